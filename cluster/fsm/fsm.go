// Package fsm is berth's raft finite state machine. Each log entry is one
// byte of message type followed by a JSON command; Apply decodes it and runs
// the command's handler in one state-store transaction.
//
// Apply is deterministic: it reads no clock, no randomness, no config and
// does no I/O. Timestamps, IDs and already-sealed secrets arrive inside the
// command. A command that cannot be decoded is a fatal error (the log is
// corrupt or this binary is too old), as in Nomad.
package fsm

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/berthpaas/berth/cluster/state"
	"github.com/hashicorp/raft"
)

// MessageType is the first byte of every log entry. Types only grow; a
// number is never reused.
type MessageType uint8

// Message types.
const (
	AppCreateType    MessageType = 1
	AppDestroyType   MessageType = 2
	ConfigUpdateType MessageType = 3
	TokenCreateType  MessageType = 4
	TokenRevokeType  MessageType = 5
	ACLBootstrapType MessageType = 6
	ServerUpsertType MessageType = 7
	ServerRemoveType MessageType = 8
	AppUpdateType    MessageType = 9
	ReleaseType      MessageType = 10
	RollbackType     MessageType = 11
	KeyAddType       MessageType = 12
	KeyRemoveType    MessageType = 13
	BuildStartType   MessageType = 14
	BuildFinishType  MessageType = 15
	ScaleType        MessageType = 16
	CheckSetType     MessageType = 17
	DeployType       MessageType = 18
	AuditType        MessageType = 19
	DomainAddType    MessageType = 20
	DomainRemoveType MessageType = 21
	EndpointsSetType MessageType = 22
	RouterReportType MessageType = 23
	CertPutType      MessageType = 24
	CertDeleteType   MessageType = 25
	CertLockType     MessageType = 26
)

// Command is implemented by every command struct.
type Command interface {
	Type() MessageType
	// AuditEntry returns the audit record to write with the command, or nil.
	AuditEntry() *state.AuditEntry
}

// Audited is embedded in commands that leave an audit record.
type Audited struct {
	Audit *state.AuditEntry `json:"audit,omitempty"`
}

// AuditEntry implements Command.
func (a Audited) AuditEntry() *state.AuditEntry { return a.Audit }

// Encode serialises a command into a log entry.
func Encode(c Command) ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", c.Type(), err)
	}
	return append([]byte{byte(c.Type())}, b...), nil
}

// handler applies one encoded command inside txn and returns its result.
type handler func(txn *state.Txn, body []byte) (any, error)

// entry is what the FSM knows of one message type.
type entry struct {
	apply  handler
	decode func(body []byte) (Command, error)
}

// FSM implements raft.FSM over the state store.
type FSM struct {
	log      *slog.Logger
	handlers map[MessageType]entry

	mu    sync.RWMutex
	store *state.Store
	// applied is the index of the last command this FSM has applied (or a
	// restored snapshot covers). raft's own AppliedIndex runs ahead of the
	// FSM: raft counts a batch applied when it hands it to the FSM goroutine.
	applied atomic.Uint64
}

var _ raft.FSM = (*FSM)(nil)

// New returns an FSM over an empty store.
func New(log *slog.Logger) (*FSM, error) {
	st, err := state.New()
	if err != nil {
		return nil, err
	}
	f := &FSM{log: log, store: st}
	f.handlers = map[MessageType]entry{
		AppCreateType:    decoded(applyAppCreate),
		AppDestroyType:   decoded(applyAppDestroy),
		ConfigUpdateType: decoded(applyConfigUpdate),
		TokenCreateType:  decoded(applyTokenCreate),
		TokenRevokeType:  decoded(applyTokenRevoke),
		ACLBootstrapType: decoded(applyACLBootstrap),
		ServerUpsertType: decoded(applyServerUpsert),
		ServerRemoveType: decoded(applyServerRemove),
		AppUpdateType:    decoded(applyAppUpdate),
		ReleaseType:      decoded(applyRelease),
		RollbackType:     decoded(applyRollback),
		KeyAddType:       decoded(applyKeyAdd),
		KeyRemoveType:    decoded(applyKeyRemove),
		BuildStartType:   decoded(applyBuildStart),
		BuildFinishType:  decoded(applyBuildFinish),
		ScaleType:        decoded(applyScale),
		CheckSetType:     decoded(applyCheckSet),
		DeployType:       decoded(applyDeploy),
		DomainAddType:    decoded(applyDomainAdd),
		DomainRemoveType: decoded(applyDomainRemove),
		EndpointsSetType: decoded(applyEndpointsSet),
		RouterReportType: decoded(applyRouterReport),
		CertPutType:      decoded(applyCertPut),
		CertDeleteType:   decoded(applyCertDelete),
		CertLockType:     decoded(applyCertLock),
		AuditType:        decoded(applyAuditRecord),
	}
	return f, nil
}

// decoded adapts a typed apply function into an entry.
func decoded[C Command](apply func(*state.Txn, C) (any, error)) entry {
	decode := func(body []byte) (C, error) {
		var cmd C
		err := json.Unmarshal(body, &cmd)
		return cmd, err
	}
	return entry{
		decode: func(body []byte) (Command, error) { return decode(body) },
		apply: func(txn *state.Txn, body []byte) (any, error) {
			cmd, err := decode(body)
			if err != nil {
				panic(fmt.Sprintf("fsm: cannot decode %T: %v", cmd, err))
			}
			res, err := apply(txn, cmd)
			if err != nil {
				return nil, err
			}
			if a := cmd.AuditEntry(); a != nil {
				if err := txn.AddAudit(*a); err != nil {
					return nil, err
				}
			}
			return res, nil
		},
	}
}

// Decode parses an encoded command, so that a command received from another
// server is checked before it can enter the log (where a bad one is fatal).
func (f *FSM) Decode(b []byte) (Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	e, ok := f.handlers[MessageType(b[0])]
	if !ok {
		return nil, fmt.Errorf("unknown message type %d", b[0])
	}
	cmd, err := e.decode(b[1:])
	if err != nil {
		return nil, fmt.Errorf("decode message type %d: %w", b[0], err)
	}
	return cmd, nil
}

// State returns the current state store. It changes on snapshot restore,
// so callers should not keep it across requests.
func (f *FSM) State() *state.Store {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.store
}

// Apply implements raft.FSM. It returns the handler's result or its error.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty log entry at index %d", l.Index))
	}
	t := MessageType(l.Data[0])
	e, ok := f.handlers[t]
	if !ok {
		panic(fmt.Sprintf("fsm: unknown message type %d at index %d; is this server older than the cluster?", t, l.Index))
	}
	txn := f.State().Write(l.Index)
	defer f.applied.Store(l.Index)
	res, err := e.apply(txn, l.Data[1:])
	if err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return res
}

// AppliedIndex is the index of the last command whose effect is in State
// (after a snapshot restore: at least the last one that changed state).
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Snapshot implements raft.FSM; it is O(1), Persist does the work.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{snap: f.State().Snapshot()}, nil
}

// Restore implements raft.FSM: it replaces the store with the snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := state.Restore(rc)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	old := f.store
	f.store = st
	f.mu.Unlock()
	if idx := st.Snapshot().LatestIndex(); idx > f.applied.Load() {
		f.applied.Store(idx)
	}
	old.Abandon()
	return nil
}

type snapshot struct {
	snap *state.Snapshot
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// AuditRecord records an action that changes no state, such as a restart
// or a one-off run.
type AuditRecord struct {
	Audited
}

// Type implements Command.
func (AuditRecord) Type() MessageType { return AuditType }

func applyAuditRecord(*state.Txn, AuditRecord) (any, error) { return nil, nil }
