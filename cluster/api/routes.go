package api

import (
	"context"
	"net/http"
	"time"
)

// RouteTable is what routers serve: GET /v1/routes, a blocking query
// (pass the last X-Berth-Index as WaitIndex to wait for the next change).
type RouteTable struct {
	// Index is the state index the table was read at; routers report it
	// back once they serve it.
	Index uint64 `json:"index"`
	// AppsDomain gives every app the host APP.<AppsDomain> ("" for none).
	AppsDomain string `json:"apps_domain,omitempty"`
	// Runtime names where upstreams come from: "docker" (Upstreams) or
	// "nomad" (Consul services).
	Runtime string  `json:"runtime,omitempty"`
	Routes  []Route `json:"routes"`
}

// Route is one app as routers see it.
type Route struct {
	App string `json:"app"`
	// Release is the active release; 0 until the first deploy cuts over.
	Release uint64 `json:"release"`
	// Hosts are the app's custom domains.
	Hosts      []string `json:"hosts,omitempty"`
	ForceHTTPS bool     `json:"force_https,omitempty"`
	HSTS       bool     `json:"hsts,omitempty"`
	// LB is "" (round robin) or "least_conn".
	LB string `json:"lb,omitempty"`
	// Upstreams are host:port of the active release's healthy web
	// instances, when the control plane knows them (docker runtime).
	Upstreams []string `json:"upstreams,omitempty"`
	// Service and Tag name the Consul service whose passing instances are
	// the upstreams (nomad runtime): health of Service filtered by Tag.
	Service string `json:"service,omitempty"`
	Tag     string `json:"tag,omitempty"`
}

// RouterReport is the body of PUT /v1/routers/{id}: a router says which
// routes index it serves. Routers report after every table they apply and
// at least every RouterReportInterval; the deployer waits for every router
// seen within RouterLiveWindow before old instances go.
type RouterReport struct {
	Name    string `json:"name"`
	Applied uint64 `json:"applied"`
}

// RouterInfo is a router as the control plane knows it.
type RouterInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Applied uint64    `json:"applied"`
	SeenAt  time.Time `json:"seen_at"`
}

// Router liveness.
const (
	RouterReportInterval = 10 * time.Second
	RouterLiveWindow     = 30 * time.Second
)

// Routes reads the route table; with q.WaitIndex it blocks until the table
// changes past that index (or q.WaitTime ends). Routers read with Stale so
// any server answers.
func (c *Client) Routes(ctx context.Context, q *QueryOptions) (*RouteTable, *QueryMeta, error) {
	var out RouteTable
	meta, err := c.get(ctx, "/v1/routes", q, nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// ReportRouter records that router id serves routes index r.Applied.
func (c *Client) ReportRouter(ctx context.Context, id string, r RouterReport) error {
	return c.write(ctx, http.MethodPut, "/v1/routers/"+esc(id), r, nil)
}

// Routers lists the routers that reported recently.
func (c *Client) Routers(ctx context.Context, q *QueryOptions) ([]RouterInfo, *QueryMeta, error) {
	var out []RouterInfo
	meta, err := c.get(ctx, "/v1/routers", q, nil, &out)
	return out, meta, err
}
