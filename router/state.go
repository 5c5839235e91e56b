package router

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// stateFile is what the router keeps on disk: the last table a live source
// delivered, so a restart during a control-plane outage still serves.
type stateFile struct {
	Version int       `json:"version"`
	SavedAt time.Time `json:"saved_at"`
	Routes  []Route   `json:"routes"`
}

const stateVersion = 1

// saveState writes the routes atomically: a temporary file in the same
// directory, fsynced, renamed over the old one, then the directory fsynced.
// A crash leaves the old file or the new one, never half of one.
func saveState(path string, routes []Route) error {
	if routes == nil {
		routes = []Route{}
	}
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, SavedAt: time.Now().UTC(), Routes: routes}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadState reads a state file written by saveState.
func loadState(path string) ([]Route, time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, time.Time{}, fmt.Errorf("state file %s: %w", path, err)
	}
	if st.Version != stateVersion {
		return nil, time.Time{}, fmt.Errorf("state file %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return st.Routes, st.SavedAt, nil
}
