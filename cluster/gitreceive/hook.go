package gitreceive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Limits on what the hook reads from git.
const (
	maxRefUpdates  = 10000
	maxRefLineSize = 4096
)

// objectRe matches a full SHA-1 or SHA-256 object name, including the
// all-zero name git uses for "no object".
var objectRe = commitRe

// zeroRe matches the all-zero object name: a created ref's old value or a
// deleted ref's new value.
var zeroRe = regexp.MustCompile(`^0+$`)

type refUpdate struct{ old, new, ref string }

// RunHook is the body of `berth git-hook pre-receive`. git receive-pack
// runs it (through the script berth installs in every repository) with the
// pushed ref updates on stdin; everything written to stderr reaches the
// pusher as "remote: ...". It deploys a push to a deploy branch through the
// berth server that started receive-pack and returns the hook's exit
// status: non-zero rejects the whole push, and git then updates no ref.
// env is the hook's environment (os.Environ()): the server's BERTH_* values
// and git's quarantine variables, which git archive needs to see the pushed
// objects.
func RunHook(ctx context.Context, stdin io.Reader, stderr io.Writer, env []string) int {
	say := func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	socket, token, app := vars["BERTH_HOOK_SOCKET"], vars["BERTH_HOOK_TOKEN"], vars["BERTH_APP"]
	if socket == "" || token == "" || app == "" {
		say("berth: this repository accepts pushes only through the berth git server")
		return 1
	}
	branches := strings.Fields(vars["BERTH_DEPLOY_BRANCHES"])
	updates, err := readRefUpdates(stdin)
	if err != nil {
		say("berth: %v", err)
		return 1
	}

	deployList := "none"
	if len(branches) > 0 {
		deployList = strings.Join(branches, ", ")
	}
	var deploy *refUpdate
	var notes []string
	for i, u := range updates {
		branch, isBranch := strings.CutPrefix(u.ref, "refs/heads/")
		deleted := zeroRe.MatchString(u.new)
		switch {
		case isBranch && slices.Contains(branches, branch):
			if deleted {
				say("branch %s deploys %s and cannot be deleted", branch, app)
				return 1
			}
			if deploy != nil {
				say("push one deploy branch at a time (this push updates %s and %s)",
					strings.TrimPrefix(deploy.ref, "refs/heads/"), branch)
				return 1
			}
			deploy = &updates[i]
		case isBranch && deleted:
			notes = append(notes, fmt.Sprintf("branch %s deleted", branch))
		case isBranch:
			notes = append(notes, fmt.Sprintf("branch %s stored, not deployed (deploy branches: %s)", branch, deployList))
		case deleted:
			notes = append(notes, fmt.Sprintf("%s deleted", u.ref))
		default:
			notes = append(notes, fmt.Sprintf("%s stored", u.ref))
		}
	}
	for _, n := range notes {
		say("%s", n)
	}
	if deploy == nil {
		return 0
	}
	branch := strings.TrimPrefix(deploy.ref, "refs/heads/")
	say("deploying %s from %s (%s)", app, branch, deploy.new[:min(12, len(deploy.new))])
	if err := runDeploy(ctx, socket, token, app, branch, deploy.new, env, stderr); err != nil {
		for line := range strings.SplitSeq(strings.TrimRight(err.Error(), "\n"), "\n") {
			say("%s", line)
		}
		return 1
	}
	return 0
}

// readRefUpdates reads git's "old new ref" lines.
func readRefUpdates(r io.Reader) ([]refUpdate, error) {
	var updates []refUpdate
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxRefLineSize)
	for sc.Scan() {
		if len(updates) == maxRefUpdates {
			return nil, fmt.Errorf("too many refs in one push (at most %d)", maxRefUpdates)
		}
		f := strings.Split(sc.Text(), " ")
		if len(f) != 3 || !objectRe.MatchString(f[0]) && !zeroRe.MatchString(f[0]) ||
			!objectRe.MatchString(f[1]) && !zeroRe.MatchString(f[1]) || f[2] == "" {
			return nil, fmt.Errorf("unexpected input from git: %q", clip(sanitize(sc.Text())))
		}
		updates = append(updates, refUpdate{old: f[0], new: f[1], ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ref updates from git: %w", err)
	}
	return updates, nil
}

// runDeploy streams the tar of commit to the berth server and copies the
// deploy's progress to stderr as it arrives. It returns the deploy's error.
func runDeploy(ctx context.Context, socket, token, app, branch, commit string, env []string, stderr io.Writer) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
		// Send the tar only once the server has accepted the deploy (it
		// answers "100 Continue" then); a refusal comes before any of it.
		ExpectContinueTimeout: 24 * time.Hour,
	}}
	defer client.CloseIdleConnections()
	src := &archive{ctx: ctx, commit: commit, env: env}
	defer src.Close()
	err := deployRequest(ctx, client, src, token, app, branch, commit, stderr)
	if err != nil {
		// Whether git archive failed on its own is known only once it
		// has been stopped.
		if aerr := src.failureAfterClose(); aerr != nil {
			err = fmt.Errorf("%w\n%v", err, aerr)
		}
	}
	return err
}

func deployRequest(ctx context.Context, client *http.Client, src *archive, token, app, branch, commit string, stderr io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://berth"+hookDeployPath, src)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set(headerApp, app)
	req.Header.Set(headerBranch, branch)
	req.Header.Set(headerCommit, commit)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the berth server: %w", err)
	}
	defer resp.Body.Close()

	lines := &lineWriter{w: stderr}
	defer lines.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var fr hookFrame
		if err := dec.Decode(&fr); err != nil {
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("the berth server refused the deploy (%s)", resp.Status)
			}
			return fmt.Errorf("lost the connection to the berth server during the deploy of %s: %w", app, err)
		}
		if fr.Out != "" {
			if _, err := io.WriteString(lines, fr.Out); err != nil {
				return fmt.Errorf("write progress: %w", err)
			}
		}
		switch {
		case fr.Error != "" && resp.StatusCode != http.StatusOK:
			return errors.New(fr.Error)
		case fr.Error != "":
			lines.Close()
			return fmt.Errorf("deploy of %s failed: %s", app, fr.Error)
		case fr.Done:
			return nil
		}
	}
}

// archive is the request body: a tar of the commit from git archive,
// started on the first read (that is, after the server said "100
// Continue"). A git archive failure is a read error, so the server sees a
// truncated upload rather than a short tar.
type archive struct {
	ctx    context.Context
	commit string
	env    []string

	startOnce sync.Once
	startErr  error
	cmd       *exec.Cmd
	out       io.ReadCloser
	waitOnce  sync.Once
	waitErr   error
	stderrBuf bytes.Buffer
}

var errArchiveClosed = errors.New("archive closed")

func (a *archive) start() {
	// The commit is a validated object name, never an option.
	a.cmd = exec.CommandContext(a.ctx, "git", "archive", "--format=tar", a.commit)
	a.cmd.Env = a.env
	a.cmd.Stderr = &a.stderrBuf
	if a.out, a.startErr = a.cmd.StdoutPipe(); a.startErr != nil {
		return
	}
	if a.startErr = a.cmd.Start(); a.startErr != nil {
		a.startErr = fmt.Errorf("git archive: %w", a.startErr)
	}
}

func (a *archive) Read(p []byte) (int, error) {
	a.startOnce.Do(a.start)
	if a.startErr != nil {
		return 0, a.startErr
	}
	n, err := a.out.Read(p)
	if err == io.EOF {
		if werr := a.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (a *archive) wait() error {
	a.waitOnce.Do(func() {
		if err := a.cmd.Wait(); err != nil {
			a.waitErr = fmt.Errorf("git archive %s: %w: %s", a.commit, err, bytes.TrimSpace(a.stderrBuf.Bytes()))
		}
	})
	return a.waitErr
}

// Close stops git archive if it is still running.
func (a *archive) Close() error {
	a.startOnce.Do(func() { a.startErr = errArchiveClosed })
	if a.startErr != nil {
		return nil
	}
	_ = a.cmd.Process.Kill() // fails harmlessly if it has exited
	_ = a.wait()
	return nil
}

// failureAfterClose stops git archive and returns its own failure, if it
// failed by itself (not because Close killed it): the reason a deploy saw
// a truncated tar.
func (a *archive) failureAfterClose() error {
	a.Close()
	if a.startErr != nil {
		if errors.Is(a.startErr, errArchiveClosed) {
			return nil
		}
		return a.startErr
	}
	var exitErr *exec.ExitError
	if err := a.wait(); errors.As(err, &exitErr) && exitErr.ExitCode() > 0 {
		return err
	}
	return nil
}

// lineWriter passes complete lines on as they arrive; Close ends a last
// partial line.
type lineWriter struct {
	w   io.Writer
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if _, err := l.w.Write(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}

func (l *lineWriter) Close() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(append(l.buf, '\n'))
	l.buf = l.buf[:0]
	return err
}
