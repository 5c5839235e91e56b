package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/berthpaas/berth/cluster/api"
	"github.com/berthpaas/berth/cluster/auth"
	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/berthpaas/berth/cluster/raftnode"
)

// headerServerMAC authenticates a command sent by another server: HMAC of
// the body under the cluster keyring.
const headerServerMAC = "X-Berth-Server-MAC"

type applyResponse struct {
	Index uint64 `json:"index"`
}

// internalApply replicates a command that another server built (e.g. its
// build pipeline recording a release). Only servers, which share the
// keyring, can produce a valid MAC; the command is decoded before it enters
// the log, where an undecodable entry would be fatal.
func (a *API) internalApply(w http.ResponseWriter, r *request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	kr, err := a.keyring()
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(r.Header.Get(headerServerMAC))
	if err != nil || !hmac.Equal(mac, kr.MAC("apply", body)) {
		return fmt.Errorf("internal apply without a valid server MAC: %w", auth.ErrForbidden)
	}
	cmd, err := a.cfg.Node.FSM().Decode(body)
	if err != nil {
		return badRequest("%v", err)
	}
	_, idx, err := a.cfg.Node.Apply(cmd)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, applyResponse{Index: idx})
	return nil
}

// Apply replicates cmd from any server: directly on the leader, else through
// the leader's internal endpoint. It returns the raft index of the entry, so
// the caller can wait until its own state has applied it. Like forwarded
// requests, it retries for up to LeaderWait while there is no reachable
// leader.
func (a *API) Apply(ctx context.Context, cmd fsm.Command) (uint64, error) {
	body, err := fsm.Encode(cmd)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.LeaderWait)
	defer cancel()
	last := raftnode.ErrNoLeader
	for {
		if a.isLeader() {
			_, idx, err := a.cfg.Node.Apply(cmd)
			return idx, err
		}
		if _, id := a.cfg.Node.Leader(); id != "" && id != a.cfg.Name {
			if addr := a.leaderAPIAddr(id); addr != "" {
				idx, err := a.applyAt(ctx, addr, body)
				var apiErr *api.Error
				if err == nil || (errors.As(err, &apiErr) && apiErr.Code != api.CodeNoLeader) {
					return idx, err
				}
				last = fmt.Errorf("%w: %v", errLeaderUnreachable, err)
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no reachable leader within %s: %w", a.cfg.LeaderWait, last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (a *API) applyAt(ctx context.Context, addr string, body []byte) (uint64, error) {
	kr, err := a.keyring()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/internal/apply", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set(headerServerMAC, hex.EncodeToString(kr.MAC("apply", body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		if json.NewDecoder(resp.Body).Decode(&eb) == nil && eb.Error != nil {
			return 0, eb.Error
		}
		return 0, fmt.Errorf("internal apply at %s: %s", addr, resp.Status)
	}
	var out applyResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, fmt.Errorf("internal apply at %s: %w", addr, err)
	}
	return out.Index, nil
}
