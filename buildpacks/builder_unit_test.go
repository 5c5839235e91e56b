package buildpacks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Pure tests of Builder against FakeDocker; builder_test.go runs the real
// engine.

const okBuildStream = `{"stream":"Step 1/2 : FROM scratch\n"}
{"stream":" ---\u003e \n"}
{"stream":"Step 2/2 : CMD [\"x\"]\n"}
{"stream":" ---\u003e Running in 0123\n"}
{"aux":{"ID":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}}
{"stream":"Successfully built 111111111111\n"}
{"stream":"Successfully tagged berth/web:build-1\n"}
`

func TestBuildFake(t *testing.T) {
	fake := &FakeDocker{BuildStream: okBuildStream}
	dir := writeTree(t, map[string]string{"Dockerfile": "FROM scratch\n", "index.html": "hi", ".dockerignore": "secret\n", "secret": "x"})
	plan, err := Detect(dir, DetectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	id, err := NewBuilder(fake).Build(context.Background(), dir, plan, BuildOptions{
		Tag:   "berth/web:build-1",
		Log:   &log,
		Proxy: map[string]string{"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost", "NO_PROXY": "localhost,.internal", "GOPROXY": "https://goproxy.internal"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if id != "sha256:1111111111111111111111111111111111111111111111111111111111111111" {
		t.Errorf("id = %q", id)
	}
	if !strings.Contains(log.String(), "Step 2/2 : CMD") || !strings.Contains(log.String(), "Successfully tagged") {
		t.Errorf("log = %q", log.String())
	}
	o := fake.BuildOptions
	if o.Dockerfile != BuildDockerfile || len(o.Tags) != 1 || o.Tags[0] != "berth/web:build-1" || !o.Remove {
		t.Errorf("options = %+v", o)
	}
	args := map[string]string{}
	for k, v := range o.BuildArgs {
		args[k] = *v
	}
	wantArgs := map[string]string{
		"HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128",
		"NO_PROXY": "localhost,.internal", "no_proxy": "localhost", // both given: each kept
		"GOPROXY": "https://goproxy.internal",
	}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("build args (-want +got):\n%s", diff)
	}
	got := readTar(t, &fake.Context)
	want := map[string]string{
		"Dockerfile":    "FROM scratch\n",
		"index.html":    "hi",
		BuildDockerfile: "FROM scratch\n",
		".dockerignore": BuildDockerfile + "\n.dockerignore\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("context (-want +got):\n%s", diff)
	}
}

func TestBuildFakeFailure(t *testing.T) {
	var stream strings.Builder
	stream.WriteString(`{"stream":"Step 1/3 : FROM scratch\n"}` + "\n")
	stream.WriteString(`{"stream":"Step 2/3 : RUN make\n"}` + "\n")
	for i := 1; i <= 15; i++ {
		stream.WriteString(`{"stream":"output line ` + string(rune('a'+i-1)) + `\n"}` + "\n")
	}
	stream.WriteString(`{"stream":"partial "}` + "\n" + `{"stream":"line\n"}` + "\n")
	stream.WriteString(`{"errorDetail":{"code":2,"message":"The command '/bin/sh -c make' returned a non-zero code: 2"},"error":"The command '/bin/sh -c make' returned a non-zero code: 2"}` + "\n")
	fake := &FakeDocker{BuildStream: stream.String()}
	_, err := NewBuilder(fake).Build(context.Background(), t.TempDir(), &Plan{Dockerfile: []byte("FROM scratch\n")}, BuildOptions{})
	var be *BuildError
	if !errors.As(err, &be) || !errors.Is(err, ErrBuildFailed) {
		t.Fatalf("err = %v, want a *BuildError wrapping ErrBuildFailed", err)
	}
	if be.Step != "Step 2/3 : RUN make" {
		t.Errorf("step = %q", be.Step)
	}
	if len(be.Tail) != tailLines || be.Tail[len(be.Tail)-1] != "partial line" || be.Tail[0] != "output line g" {
		t.Errorf("tail = %q", be.Tail)
	}
	for _, w := range []string{"at Step 2/3 : RUN make", "returned a non-zero code: 2", "output line o"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestBuildFakeNoID(t *testing.T) {
	old := &FakeDocker{BuildStream: `{"stream":"Successfully built abcdef012345\n"}`}
	id, err := NewBuilder(old).Build(context.Background(), t.TempDir(), &Plan{Dockerfile: []byte("FROM x")}, BuildOptions{})
	if err != nil || id != "abcdef012345" {
		t.Errorf("id, err = %q, %v", id, err)
	}
	none := &FakeDocker{BuildStream: `{"stream":"hm\n"}`}
	if _, err := NewBuilder(none).Build(context.Background(), t.TempDir(), &Plan{Dockerfile: []byte("FROM x")}, BuildOptions{}); !errors.Is(err, ErrBuildFailed) {
		t.Errorf("no ID: err = %v", err)
	}
	broken := &FakeDocker{BuildStream: `{"stream":`}
	if _, err := NewBuilder(broken).Build(context.Background(), t.TempDir(), &Plan{Dockerfile: []byte("FROM x")}, BuildOptions{}); err == nil {
		t.Error("broken stream accepted")
	}
	if _, err := NewBuilder(old).Build(context.Background(), t.TempDir(), &Plan{}, BuildOptions{}); err == nil {
		t.Error("empty plan accepted")
	}
	failing := &FakeDocker{Err: errors.New("engine down")}
	if _, err := NewBuilder(failing).Build(context.Background(), t.TempDir(), &Plan{Dockerfile: []byte("FROM x")}, BuildOptions{}); err == nil || !strings.Contains(err.Error(), "engine down") {
		t.Errorf("engine error: err = %v", err)
	}
}

func testCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestBuildArgs(t *testing.T) {
	c1, c2 := testCertPEM(t), testCertPEM(t)
	args, err := buildArgs(BuildOptions{CACerts: [][]byte{c1, append(append([]byte{}, c2...), c1...)}})
	if err != nil {
		t.Fatal(err)
	}
	got := *args[CACertsArg]
	if strings.Count(got, "-----BEGIN CERTIFICATE-----") != 3 || !strings.HasSuffix(got, "-----END CERTIFICATE-----\n") {
		t.Errorf("%s = %q", CACertsArg, got)
	}
	for _, bad := range []BuildOptions{
		{Proxy: map[string]string{"Http_Proxy": "x"}},
		{Proxy: map[string]string{"LD_PRELOAD": "x"}},
		{CACerts: [][]byte{[]byte("not pem")}},
		{CACerts: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}},
		{CACerts: [][]byte{append(append([]byte{}, c1...), "junk"...)}},
	} {
		if _, err := buildArgs(bad); err == nil {
			t.Errorf("buildArgs(%+v) accepted", bad)
		}
	}
}

func TestPushFake(t *testing.T) {
	fake := &FakeDocker{PushStream: `{"status":"The push refers to repository [127.0.0.1:5000/web]"}
{"status":"Preparing","progressDetail":{},"id":"aaa"}
{"status":"Pushing","progressDetail":{"current":512,"total":1024},"progress":"[====>   ]","id":"aaa"}
{"status":"Pushed","progressDetail":{},"id":"aaa"}
{"status":"v3: digest: sha256:2222222222222222222222222222222222222222222222222222222222222222 size: 527"}
{"progressDetail":{},"aux":{"Tag":"v3","Digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","Size":527}}
`}
	var log bytes.Buffer
	digest, err := NewBuilder(fake).Push(context.Background(), "sha256:1111", "127.0.0.1:5000/web:v3", &log)
	if err != nil {
		t.Fatal(err)
	}
	if digest != "sha256:2222222222222222222222222222222222222222222222222222222222222222" {
		t.Errorf("digest = %q", digest)
	}
	if diff := cmp.Diff([]string{"sha256:1111 127.0.0.1:5000/web:v3"}, fake.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if strings.Contains(log.String(), "[====>") || !strings.Contains(log.String(), "aaa: Pushed") {
		t.Errorf("log = %q", log.String())
	}

	fail := &FakeDocker{PushStream: `{"status":"Preparing","id":"aaa"}
{"errorDetail":{"message":"Get \"https://127.0.0.1:5000/v2/\": http: server gave HTTP response to HTTPS client"},"error":"Get ..."}
`}
	_, err = NewBuilder(fail).Push(context.Background(), "x", "127.0.0.1:5000/web:v3", nil)
	if !errors.Is(err, ErrPushFailed) || !strings.Contains(err.Error(), "HTTP response to HTTPS client") || !strings.Contains(err.Error(), "127.0.0.1:5000/web:v3") {
		t.Errorf("err = %v", err)
	}
	nodigest := &FakeDocker{PushStream: `{"status":"Pushed"}`}
	if _, err := NewBuilder(nodigest).Push(context.Background(), "x", "r/x:1", nil); !errors.Is(err, ErrPushFailed) {
		t.Errorf("no digest: err = %v", err)
	}
}

func TestRunFake(t *testing.T) {
	fake := &FakeDocker{RunOutput: "release-ran\n", RunExitCode: 3}
	var log bytes.Buffer
	code, err := NewBuilder(fake).Run(context.Background(), "img", "./migrate && echo ok", []string{"A=1"}, &log)
	if err != nil || code != 3 {
		t.Fatalf("code, err = %d, %v", code, err)
	}
	if log.String() != "release-ran\n" {
		t.Errorf("log = %q", log.String())
	}
	c := fake.Created[0]
	if diff := cmp.Diff([]string{"/bin/sh", "-c"}, []string(c.Entrypoint)); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"./migrate && echo ok"}, []string(c.Cmd)); diff != "" {
		t.Errorf("cmd (-want +got):\n%s", diff)
	}
	if len(fake.Removed) != 1 {
		t.Errorf("removed = %v, want the container removed", fake.Removed)
	}
}
