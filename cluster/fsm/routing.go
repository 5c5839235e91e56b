package fsm

import (
	"time"

	"github.com/berthpaas/berth/cluster/state"
)

// DomainAdd gives a custom domain to an app.
type DomainAdd struct {
	Audited
	App    string    `json:"app"`
	Domain string    `json:"domain"`
	Time   time.Time `json:"time"`
}

// Type implements Command.
func (DomainAdd) Type() MessageType { return DomainAddType }

func applyDomainAdd(txn *state.Txn, c DomainAdd) (any, error) {
	return txn.AddDomain(c.App, c.Domain, c.Time)
}

// DomainRemove takes a custom domain from an app.
type DomainRemove struct {
	Audited
	App    string `json:"app"`
	Domain string `json:"domain"`
}

// Type implements Command.
func (DomainRemove) Type() MessageType { return DomainRemoveType }

func applyDomainRemove(txn *state.Txn, c DomainRemove) (any, error) {
	return nil, txn.RemoveDomain(c.App, c.Domain)
}

// EndpointsSet publishes where an app's active release answers (docker
// runtime); the leader's deployer sends it.
type EndpointsSet struct {
	App     string   `json:"app"`
	Release uint64   `json:"release"`
	Addrs   []string `json:"addrs"`
}

// Type implements Command.
func (EndpointsSet) Type() MessageType { return EndpointsSetType }

// AuditEntry implements Command: endpoints follow the runtime, not users.
func (EndpointsSet) AuditEntry() *state.AuditEntry { return nil }

func applyEndpointsSet(txn *state.Txn, c EndpointsSet) (any, error) {
	return nil, txn.SetEndpoints(c.App, c.Release, c.Addrs)
}

// RouterReport records which routes index a router serves, and forgets
// routers silent since ForgetBefore.
type RouterReport struct {
	Router       state.Router `json:"router"`
	ForgetBefore time.Time    `json:"forget_before"`
}

// Type implements Command.
func (RouterReport) Type() MessageType { return RouterReportType }

// AuditEntry implements Command.
func (RouterReport) AuditEntry() *state.AuditEntry { return nil }

func applyRouterReport(txn *state.Txn, c RouterReport) (any, error) {
	if err := txn.UpsertRouter(c.Router); err != nil {
		return nil, err
	}
	return nil, txn.ForgetRouters(c.ForgetBefore)
}

// CertPut stores one sealed entry of the routers' certificate storage.
type CertPut struct {
	Key   string    `json:"key"`
	Value []byte    `json:"value"`
	Time  time.Time `json:"time"`
}

// Type implements Command.
func (CertPut) Type() MessageType { return CertPutType }

// AuditEntry implements Command: certificate renewals are not user actions.
func (CertPut) AuditEntry() *state.AuditEntry { return nil }

func applyCertPut(txn *state.Txn, c CertPut) (any, error) {
	return nil, txn.PutCert(c.Key, c.Value, c.Time)
}

// CertDelete deletes a certificate-storage key and the keys under it.
type CertDelete struct {
	Key string `json:"key"`
}

// Type implements Command.
func (CertDelete) Type() MessageType { return CertDeleteType }

// AuditEntry implements Command.
func (CertDelete) AuditEntry() *state.AuditEntry { return nil }

func applyCertDelete(txn *state.Txn, c CertDelete) (any, error) {
	return nil, txn.DeleteCert(c.Key)
}

// CertLock takes (Release false) or frees (Release true) a lock of the
// certificate storage. Now is the leader's clock when it sent the command.
type CertLock struct {
	Name    string    `json:"name"`
	Owner   string    `json:"owner"`
	Release bool      `json:"release,omitempty"`
	Now     time.Time `json:"now"`
	Expires time.Time `json:"expires"`
}

// Type implements Command.
func (CertLock) Type() MessageType { return CertLockType }

// AuditEntry implements Command.
func (CertLock) AuditEntry() *state.AuditEntry { return nil }

func applyCertLock(txn *state.Txn, c CertLock) (any, error) {
	if c.Release {
		return nil, txn.ReleaseCertLock(c.Name, c.Owner)
	}
	return nil, txn.AcquireCertLock(c.Name, c.Owner, c.Now, c.Expires)
}
