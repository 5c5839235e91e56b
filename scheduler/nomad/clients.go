package nomad

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	consul "github.com/hashicorp/consul/api"
	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/scheduler"
)

// The runtime's view of the Nomad and Consul clients: only the methods it
// calls. The real clients' types satisfy them (checked below); tests use
// fakes.

// Jobs is the part of Nomad's jobs API the runtime uses (*api.Jobs).
type Jobs interface {
	Info(jobID string, q *api.QueryOptions) (*api.Job, *api.QueryMeta, error)
	List(q *api.QueryOptions) ([]*api.JobListStub, *api.QueryMeta, error)
	RegisterOpts(job *api.Job, opts *api.RegisterOptions, q *api.WriteOptions) (*api.JobRegisterResponse, *api.WriteMeta, error)
	Plan(job *api.Job, diff bool, q *api.WriteOptions) (*api.JobPlanResponse, *api.WriteMeta, error)
	DeregisterOpts(jobID string, opts *api.DeregisterOptions, q *api.WriteOptions) (string, *api.WriteMeta, error)
	Allocations(jobID string, allAllocs bool, q *api.QueryOptions) ([]*api.AllocationListStub, *api.QueryMeta, error)
	Deployments(jobID string, all bool, q *api.QueryOptions) ([]*api.Deployment, *api.QueryMeta, error)
}

// Allocations is the part of Nomad's allocations API the runtime uses
// (*api.Allocations).
type Allocations interface {
	List(q *api.QueryOptions) ([]*api.AllocationListStub, *api.QueryMeta, error)
	Info(allocID string, q *api.QueryOptions) (*api.Allocation, *api.QueryMeta, error)
}

// Evaluations is the part of Nomad's evaluations API the runtime uses
// (*api.Evaluations).
type Evaluations interface {
	Info(evalID string, q *api.QueryOptions) (*api.Evaluation, *api.QueryMeta, error)
}

// Streams are Nomad's client-node endpoints the runtime uses: task logs
// and exec (*api.AllocFS and *api.Allocations of a client made without
// keep-alives, as each stream is one long request).
type Streams interface {
	Logs(alloc *api.Allocation, follow bool, task, logType, origin string, offset int64,
		cancel <-chan struct{}, q *api.QueryOptions) (<-chan *api.StreamFrame, <-chan error)
	Exec(ctx context.Context, alloc *api.Allocation, task string, tty bool, command []string,
		stdin io.Reader, stdout, stderr io.Writer, terminalSizeCh <-chan api.TerminalSize, q *api.QueryOptions) (int, error)
}

// Health is the part of Consul's health API the runtime uses
// (*consul.Health).
type Health interface {
	State(state string, q *consul.QueryOptions) (consul.HealthChecks, *consul.QueryMeta, error)
}

var (
	_ Jobs        = (*api.Jobs)(nil)
	_ Allocations = (*api.Allocations)(nil)
	_ Evaluations = (*api.Evaluations)(nil)
	_ Health      = (*consul.Health)(nil)
	_ Streams     = streams{}
)

// streams joins the two client-node APIs of one Nomad client.
type streams struct {
	fs     *api.AllocFS
	allocs *api.Allocations
}

func (s streams) Logs(alloc *api.Allocation, follow bool, task, logType, origin string, offset int64,
	cancel <-chan struct{}, q *api.QueryOptions) (<-chan *api.StreamFrame, <-chan error) {
	return s.fs.Logs(alloc, follow, task, logType, origin, offset, cancel, q)
}

func (s streams) Exec(ctx context.Context, alloc *api.Allocation, task string, tty bool, command []string,
	stdin io.Reader, stdout, stderr io.Writer, terminalSizeCh <-chan api.TerminalSize, q *api.QueryOptions) (int, error) {
	return s.allocs.Exec(ctx, alloc, task, tty, command, stdin, stdout, stderr, terminalSizeCh, q)
}

// clients are what a Runtime talks to.
type clients struct {
	jobs   Jobs
	allocs Allocations
	evals  Evaluations
	stream Streams
	health Health
	// closeIdle closes the clients' idle connections (Close).
	closeIdle func()
}

// unreachable says whether err means the agent could not be reached or
// could not serve (no leader), as opposed to refusing a request.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		uerr *url.Error
		nerr net.Error
		oerr *net.OpError
	)
	if errors.As(err, &oerr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &nerr) {
		return true
	}
	if errors.As(err, &uerr) {
		return true
	}
	var rerr api.UnexpectedResponseError
	if errors.As(err, &rerr) {
		switch rerr.StatusCode() {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return strings.Contains(rerr.Body(), "No cluster leader")
	}
	// Consul's client reports HTTP errors as text.
	msg := err.Error()
	return strings.Contains(msg, "No cluster leader") || strings.Contains(msg, "Unexpected response code: 503")
}

// notFound says whether Nomad answered 404.
func notFound(err error) bool {
	var rerr api.UnexpectedResponseError
	if errors.As(err, &rerr) {
		return rerr.StatusCode() == http.StatusNotFound
	}
	return err != nil && strings.Contains(err.Error(), "Unexpected response code: 404")
}

// nomadErr wraps an error of a Nomad call: scheduler.ErrUnavailable when
// Nomad could not be reached, with its address and what was being done. A
// failed TLS handshake is not unavailability (retrying does not help): its
// error says what berth trusts and expects.
func (r *Runtime) nomadErr(what string, err error) error {
	if tlsFailure(err) {
		return fmt.Errorf("nomad at %s: %s: %s: %w", r.cfg.NomadAddr, what, tlsHint(r.cfg.NomadAddr, r.cfg.NomadTLS), err)
	}
	if unreachable(err) {
		return fmt.Errorf("%w: nomad at %s: %s: %w", scheduler.ErrUnavailable, r.cfg.NomadAddr, what, err)
	}
	return fmt.Errorf("nomad: %s: %w", what, err)
}

// consulErr is nomadErr for Consul.
func (r *Runtime) consulErr(what string, err error) error {
	if tlsFailure(err) {
		return fmt.Errorf("consul at %s: %s: %s: %w", r.cfg.ConsulAddr, what, tlsHint(r.cfg.ConsulAddr, r.cfg.ConsulTLS), err)
	}
	if unreachable(err) {
		return fmt.Errorf("%w: consul at %s: %s: %w", scheduler.ErrUnavailable, r.cfg.ConsulAddr, what, err)
	}
	return fmt.Errorf("consul: %s: %w", what, err)
}
