package gitreceive

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/berthpaas/berth/cluster/api"
	gossh "golang.org/x/crypto/ssh"
)

// gitProtocolRe is the one environment value a session may set:
// GIT_PROTOCOL, which git sends (as SendEnv) to ask for protocol v2.
var gitProtocolRe = regexp.MustCompile(`^version=[0-2]$`)

// handleSession serves one "session" channel. Exactly one exec request of
// git-receive-pack or git-upload-pack is honoured; shells, subsystems and
// other commands get a message and exit status 1; pty, env (other than
// GIT_PROTOCOL), X11, agent forwarding and the rest are refused.
func (s *Server) handleSession(ctx context.Context, caller Caller, remote string, newCh gossh.NewChannel) {
	ch, reqs, err := newCh.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := s.log.With("remote", remote, "caller", caller.Name, "key", caller.KeyFingerprint)

	var (
		started  bool
		protocol string
		run      sync.WaitGroup
	)
	sess := &session{Channel: ch}
	start := func(f func() int) {
		started = true
		run.Go(func() { sess.exit(f()) })
	}
	refuse := func(format string, args ...any) func() int {
		return func() int {
			fmt.Fprintf(ch.Stderr(), "berth: "+format+"\n", args...)
			return 1
		}
	}
	// The request channel closes when the channel does, from either side.
	for req := range reqs {
		ok := false
		var job func() int
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if started || gossh.Unmarshal(req.Payload, &p) != nil {
				break
			}
			ok = true
			svc, app, err := parseCommand(p.Command)
			if err != nil {
				log.Warn("refused ssh command", "command", clip(sanitize(p.Command)), "err", err)
				job = refuse("%s", userMessage(err))
				break
			}
			log := log.With("service", string(svc), "app", app)
			proto := protocol
			job = func() int { return s.serveGit(ctx, sess, log, caller, svc, app, proto) }
		case "shell":
			if started {
				break
			}
			ok = true
			log.Info("refused shell")
			job = refuse("interactive shells are not available; this server only accepts git push and git fetch of <app>.git")
		case "subsystem":
			if started {
				break
			}
			ok = true
			log.Info("refused subsystem")
			job = refuse("subsystems (sftp, ...) are not available; this server only accepts git push and git fetch of <app>.git")
		case "env":
			var p struct{ Name, Value string }
			if !started && gossh.Unmarshal(req.Payload, &p) == nil &&
				p.Name == "GIT_PROTOCOL" && gitProtocolRe.MatchString(p.Value) {
				protocol, ok = p.Value, true
			} else {
				log.Debug("refused ssh env request", "name", clip(sanitize(p.Name)))
			}
		default:
			// pty-req, x11-req, auth-agent-req@openssh.com, signal, ...
			log.Debug("refused ssh session request", "type", clip(sanitize(req.Type)))
		}
		// Reply before the job can write, so the client sees its command
		// accepted before any output or exit status.
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		if job != nil {
			start(job)
		}
	}
	cancel()
	run.Wait()
}

// userMessage is the text shown to a client for err: an API error's
// message without its code, on one line and without control characters.
func userMessage(err error) string {
	msg := err.Error()
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Message != "" {
		msg = strings.Replace(msg, apiErr.Error(), apiErr.Message, 1)
	}
	return sanitize(msg)
}

// sanitize replaces control characters so a message stays on its line and
// cannot drive the client's terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// session is an accepted session channel.
type session struct {
	gossh.Channel
	once sync.Once
}

// exit reports the exit status and closes the channel; only the first
// call counts.
func (s *session) exit(status int) {
	s.once.Do(func() {
		_, _ = s.SendRequest("exit-status", false, gossh.Marshal(struct{ Status uint32 }{uint32(status)}))
		_ = s.CloseWrite()
		s.Close()
	})
}
