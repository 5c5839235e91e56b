package raftnode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/berthpaas/berth/cluster/fsm"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Errors callers map to "503, retry": the write was refused or may not have
// been applied.
var (
	// ErrNotLeader means this server is not the leader; forward to it.
	ErrNotLeader = errors.New("this server is not the raft leader")
	// ErrNoLeader means no leader is known: the cluster has lost quorum or
	// is electing.
	ErrNoLeader = errors.New("no raft leader: the cluster is electing or has lost quorum")
	// ErrUncertain means leadership was lost while a write was in flight; it
	// may or may not have been applied.
	ErrUncertain = errors.New("leadership was lost during the write; it may not have been applied")
)

// Config is the raft member's configuration.
type Config struct {
	Name      string // unique server name, used as raft ID
	Dir       string // raft data directory
	Bind      string // raft TCP bind address
	Advertise string // address other servers dial; defaults to Bind

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64

	Logger *slog.Logger
	// OnApply, if set, observes the latency of every successful Apply.
	OnApply func(time.Duration)
}

// Node is a running raft member.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	fsm       *fsm.FSM
	transport *raft.NetworkTransport
	bolt      *raftboltdb.BoltStore
	snaps     *raft.FileSnapshotStore
	hasState  bool
	leaderCh  chan bool
}

// Open starts the raft member over fsm. It does not bootstrap.
func Open(cfg Config, f *fsm.FSM) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raft data dir: %w", err)
	}
	hlog := hclogAdapter(cfg.Logger.With("component", "raft"))

	adv := cfg.Advertise
	if adv == "" {
		adv = cfg.Bind
	}
	advAddr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return nil, fmt.Errorf("raft advertise address %q: %w", adv, err)
	}
	if advAddr.IP == nil || advAddr.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft advertise address %q must name a reachable IP, not 0.0.0.0; set --raft-advertise", adv)
	}
	transport, err := raft.NewTCPTransportWithLogger(cfg.Bind, advAddr, 3, 10*time.Second, hlog)
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.Bind, err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
	if err != nil {
		transport.Close()
		return nil, fmt.Errorf("raft log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		transport.Close()
		bolt.Close()
		return nil, fmt.Errorf("raft snapshot store: %w", err)
	}
	logs, err := raft.NewLogCache(1024, bolt)
	if err != nil {
		transport.Close()
		bolt.Close()
		return nil, fmt.Errorf("raft log cache: %w", err)
	}
	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		transport.Close()
		bolt.Close()
		return nil, fmt.Errorf("read raft state: %w", err)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Name)
	rc.Logger = hlog
	setDuration(&rc.HeartbeatTimeout, cfg.HeartbeatTimeout)
	setDuration(&rc.ElectionTimeout, cfg.ElectionTimeout)
	setDuration(&rc.LeaderLeaseTimeout, cfg.LeaderLeaseTimeout)
	setDuration(&rc.SnapshotInterval, cfg.SnapshotInterval)
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	rc.CommitTimeout = 20 * time.Millisecond
	rc.BatchApplyCh = true
	leaderCh := make(chan bool, 8)
	rc.NotifyCh = leaderCh

	r, err := raft.NewRaft(rc, f, logs, bolt, snaps, transport)
	if err != nil {
		transport.Close()
		bolt.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return &Node{cfg: cfg, raft: r, fsm: f, transport: transport, bolt: bolt, snaps: snaps, hasState: has, leaderCh: leaderCh}, nil
}

func setDuration(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// HasState reports whether the member found raft state on disk at Open:
// such a member rejoins its cluster by itself and must not bootstrap.
func (n *Node) HasState() bool { return n.hasState }

// Name is this member's raft ID.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is this member's advertised raft address.
func (n *Node) Addr() string { return string(n.transport.LocalAddr()) }

// FSM is the state machine this member applies to.
func (n *Node) FSM() *fsm.FSM { return n.fsm }

// LeaderCh delivers true when this member becomes leader and false when it
// stops being leader. One goroutine should consume it.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// Bootstrap forms a new cluster with servers (which must include this
// member). All founding members may call it with the same list.
func (n *Node) Bootstrap(servers []raft.Server) error {
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// Apply replicates cmd and returns the FSM's result, or the FSM's error.
func (n *Node) Apply(cmd fsm.Command) (any, uint64, error) {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	fut := n.raft.Apply(b, 5*time.Second)
	if err := fut.Error(); err != nil {
		return nil, 0, mapRaftErr(err)
	}
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(time.Since(start))
	}
	if err, ok := fut.Response().(error); ok {
		return nil, fut.Index(), err
	}
	return fut.Response(), fut.Index(), nil
}

func mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return ErrNotLeader
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrUncertain
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	}
	return err
}

// IsLeader reports whether this member is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's raft address and ID ("" if none is known).
func (n *Node) Leader() (addr, id string) {
	a, i := n.raft.LeaderWithID()
	return string(a), string(i)
}

// State is this member's raft state (Leader, Follower, Candidate, Shutdown).
func (n *Node) State() string { return n.raft.State().String() }

// VerifyLeader confirms with a quorum that this member is still leader.
func (n *Node) VerifyLeader() error {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return mapRaftErr(err)
	}
	return nil
}

// Barrier waits until every entry committed so far is applied locally.
func (n *Node) Barrier(timeout time.Duration) error {
	return mapRaftErr(n.raft.Barrier(timeout).Error())
}

// WaitForLeader blocks until a leader is known or ctx ends.
func (n *Node) WaitForLeader(ctx context.Context) (string, error) {
	for {
		if _, id := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", ErrNoLeader
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitForAppliedIndex blocks until the FSM has applied idx or ctx ends.
func (n *Node) WaitForAppliedIndex(ctx context.Context, idx uint64) error {
	for n.fsm.AppliedIndex() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for index %d (applied %d): %w", idx, n.fsm.AppliedIndex(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Servers returns the current raft configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	fut := n.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	return fut.Configuration().Servers, nil
}

// AddVoter adds (or re-adds at a new address) a voting member.
func (n *Node) AddVoter(name, addr string) error {
	if err := n.raft.AddVoter(raft.ServerID(name), raft.ServerAddress(addr), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("add server %s at %s: %w", name, addr, mapRaftErr(err))
	}
	return nil
}

// RemoveServer removes a member from the configuration.
func (n *Node) RemoveServer(name string) error {
	if err := n.raft.RemoveServer(raft.ServerID(name), 0, 10*time.Second).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", name, mapRaftErr(err))
	}
	return nil
}

// Snapshot takes a snapshot now (and compacts the log).
func (n *Node) Snapshot() error {
	if err := n.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("raft snapshot: %w", err)
	}
	return nil
}

// Stats is raft's own view of this member.
type Stats struct {
	State             string
	Term              uint64
	CommitIndex       uint64
	AppliedIndex      uint64
	LastLogIndex      uint64
	LastSnapshotIndex uint64
	LastContact       time.Duration // 0 on the leader; -1 if never
}

// Stats returns this member's raft numbers.
func (n *Node) Stats() Stats {
	st := n.raft.Stats()
	num := func(k string) uint64 {
		var v uint64
		fmt.Sscan(st[k], &v)
		return v
	}
	s := Stats{
		State: n.raft.State().String(), Term: num("term"), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(), LastLogIndex: n.raft.LastIndex(), LastSnapshotIndex: num("last_snapshot_index"),
	}
	switch {
	case n.IsLeader():
	case n.raft.LastContact().IsZero():
		s.LastContact = -1
	default:
		s.LastContact = time.Since(n.raft.LastContact())
	}
	return s
}

// Shutdown stops raft and closes its stores. It is safe to call twice.
func (n *Node) Shutdown() error {
	err := n.raft.Shutdown().Error()
	n.transport.Close()
	if cerr := n.bolt.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// hclogAdapter routes raft's hclog output into slog.
func hclogAdapter(l *slog.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Output: io.Discard, Level: hclog.Info})
	il.RegisterSink(sink{l})
	return il
}

type sink struct{ l *slog.Logger }

func (s sink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl := slog.LevelInfo
	switch {
	case level <= hclog.Debug:
		lvl = slog.LevelDebug
	case level == hclog.Warn:
		lvl = slog.LevelWarn
	case level >= hclog.Error:
		lvl = slog.LevelError
	}
	s.l.Log(context.Background(), lvl, msg, args...)
}
