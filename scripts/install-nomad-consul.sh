#!/usr/bin/env bash
# Builds and caches the Nomad and Consul binaries berth runs containers with,
# and does nothing when they are already there.
#
#   scripts/install-nomad-consul.sh [--force] [--quiet]
#
#   --force   rebuild even when the cached binaries report the right versions
#   --quiet   print only the two binary paths (one a line) on success
#
# Binaries land in ${BERTH_TOOLS_DIR:-$HOME/.cache/berth/tools}/bin/{nomad,consul}.
# The last open-source (MPL-2.0) releases are built from source fetched
# through the Go module proxy: Nomad 1.6.1 and Consul 1.14.11. Newer releases
# are not open source and are never fetched. Their go.mod files replace nested
# modules (api, sdk, proto-public) with ./api etc., which module zips do not
# contain, so each module is copied to a scratch directory, those replace
# lines are dropped and the nested modules are pinned to published versions.
#
# Needs Go (1.21 or later; built and tested with 1.26) and, for Nomad, a C
# compiler: Nomad's Linux build needs cgo (runc's libcontainer/nsenter). As
# root, gcc is installed with apt-get when missing. Each build takes about
# 3 minutes on 2 cores and uses the Go module cache, which is kept; the
# scratch copy is removed. Build logs: $BERTH_TOOLS_DIR/logs/.
set -euo pipefail

NOMAD_MODULE=github.com/hashicorp/nomad
NOMAD_VERSION=1.6.1
NOMAD_API_VERSION=v0.0.0-20230721134942-515895c7690c
# Nomad's release builds use the codegen_generated tag (the generated msgpack
# codecs ship in the module zip). The "ui" tag is left out: the web UI assets
# are not in the zip.
NOMAD_TAGS=codegen_generated

CONSUL_MODULE=github.com/hashicorp/consul
CONSUL_VERSION=1.14.11
# Consul's go.mod requires these; they are what its ./api, ./sdk and
# ./proto-public replace lines stood for.
CONSUL_NESTED=(api sdk proto-public)

force=0
quiet=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	--quiet) quiet=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "install-nomad-consul: unknown argument: $arg (try --help)" >&2
		exit 2
		;;
	esac
done

TOOLS_DIR=${BERTH_TOOLS_DIR:-$HOME/.cache/berth/tools}
BIN_DIR=$TOOLS_DIR/bin
LOG_DIR=$TOOLS_DIR/logs

say() { [ "$quiet" = 1 ] || echo "install-nomad-consul: $*" >&2; }
die() {
	echo "install-nomad-consul: error: $*" >&2
	exit 1
}

# has_version BIN WORD VERSION: BIN's "version" output starts "WORD vVERSION".
has_version() {
	[ -x "$1" ] || return 1
	local out
	# No "| head": under pipefail, a SIGPIPE of the binary would fail the check.
	out=$("$1" version 2>/dev/null) || return 1
	[ "${out%%$'\n'*}" = "$2 v$3" ]
}

nomad_ok() { has_version "$BIN_DIR/nomad" Nomad "$NOMAD_VERSION"; }
consul_ok() { has_version "$BIN_DIR/consul" Consul "$CONSUL_VERSION"; }

report() {
	if [ "$quiet" = 1 ]; then
		printf '%s\n' "$BIN_DIR/nomad" "$BIN_DIR/consul"
	else
		say "nomad  $NOMAD_VERSION:  $BIN_DIR/nomad"
		say "consul $CONSUL_VERSION: $BIN_DIR/consul"
	fi
}

if [ "$force" = 0 ] && nomad_ok && consul_ok; then
	report
	exit 0
fi

# --- prerequisites ---------------------------------------------------------
command -v go >/dev/null || die "Go is required (https://go.dev/doc/install); none on PATH"
go_minor=$(go env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
if [ -n "$go_minor" ] && [ "$go_minor" -lt 21 ]; then
	die "Go 1.21 or later is required; found $(go env GOVERSION)"
fi

need_cc=0
if [ "$force" = 1 ] || ! nomad_ok; then
	cc=$(go env CC)
	command -v "${cc%% *}" >/dev/null || need_cc=1
fi
if [ "$need_cc" = 1 ]; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
		say "installing gcc (Nomad's Linux build needs cgo)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
	else
		die "Nomad's Linux build needs cgo and a C compiler; none found ($(go env CC)). Install gcc (Debian: apt-get install gcc libc6-dev)"
	fi
fi

mkdir -p "$BIN_DIR" "$LOG_DIR"

# One run at a time per tools dir.
if command -v flock >/dev/null; then
	exec 9>"$TOOLS_DIR/.install.lock"
	flock 9
	# Another run may have finished the job while this one waited.
	if [ "$force" = 0 ] && nomad_ok && consul_ok; then
		report
		exit 0
	fi
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/berth-nomad-consul.XXXXXX")
cleanup() {
	# Module cache copies are read-only; make them removable first.
	chmod -R u+w "$SCRATCH" 2>/dev/null || true
	rm -rf "$SCRATCH"
}
trap cleanup EXIT

# Build settings: -mod=mod so go.mod/go.sum of the copy may be completed;
# buildvcs off (the copy is no repository); the module cache stays.
export GOFLAGS="-mod=mod -buildvcs=false"

# fetch_module MODULE VERSION: downloads MODULE@VERSION through the module
# proxy into the module cache and prints its directory there.
fetch_module() {
	local dl=$SCRATCH/download json dir
	if [ ! -f "$dl/go.mod" ]; then
		mkdir -p "$dl"
		(cd "$dl" && go mod init berth.local/download >/dev/null 2>&1)
	fi
	json=$(cd "$dl" && go mod download -json "$1@$2" 2>&1) ||
		die "could not download $1@$2 through the Go module proxy ($(go env GOPROXY)):
$json"
	dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	dir=${dir%%$'\n'*}
	if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
		die "go mod download gave no module directory for $1@$2:
$json"
	fi
	printf '%s\n' "$dir"
}

# module_time MODULE VERSION: the release time the proxy records, RFC 3339.
module_time() {
	local info
	info="$(go env GOMODCACHE)/cache/download/$1/@v/$2.info"
	if [ -f "$info" ]; then
		sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info"
	fi
}

# copy_module NAME DIR: a writable copy of DIR at $SCRATCH/NAME; prints it.
copy_module() {
	local dst=$SCRATCH/$1
	rm -rf "$dst"
	cp -r "$2" "$dst"
	chmod -R u+w "$dst"
	printf '%s\n' "$dst"
}

# build NAME SRC WORD VERSION [go build args...]: builds SRC's root package,
# checks that it reports "WORD vVERSION" and installs it atomically into $BIN_DIR.
build() {
	local name=$1 src=$2 word=$3 version=$4
	shift 4
	local log=$LOG_DIR/$name-build.log out=$SCRATCH/$name.out start end
	say "building $name $version (takes minutes; log: $log)"
	start=$(date +%s)
	if ! (cd "$src" && go build -trimpath -o "$out" "$@" .) >"$log" 2>&1; then
		echo "install-nomad-consul: error: building $name $version failed; last lines of $log:" >&2
		grep -v '^go: downloading' "$log" | tail -n 30 >&2
		exit 1
	fi
	end=$(date +%s)
	has_version "$out" "$word" "$version" ||
		die "the $name just built does not report $word v$version: $("$out" version 2>&1)"
	install -m 0755 "$out" "$BIN_DIR/.$name.new"
	mv -f "$BIN_DIR/.$name.new" "$BIN_DIR/$name"
	say "built $name $version in $((end - start))s ($(du -h "$BIN_DIR/$name" | cut -f1))"
}

# --- Nomad -----------------------------------------------------------------
if [ "$force" = 1 ] || ! nomad_ok; then
	say "fetching $NOMAD_MODULE@v$NOMAD_VERSION"
	dir=$(fetch_module "$NOMAD_MODULE" "v$NOMAD_VERSION")
	src=$(copy_module nomad "$dir")
	(cd "$src" && go mod edit \
		-dropreplace="$NOMAD_MODULE/api" \
		-require="$NOMAD_MODULE/api@$NOMAD_API_VERSION")
	ldflags="-s -w"
	date=$(module_time "$NOMAD_MODULE" "v$NOMAD_VERSION")
	[ -z "$date" ] || ldflags="$ldflags -X $NOMAD_MODULE/version.BuildDate=$date"
	CGO_ENABLED=1 build nomad "$src" Nomad "$NOMAD_VERSION" \
		-tags "$NOMAD_TAGS" -ldflags "$ldflags"
	chmod -R u+w "$src" && rm -rf "$src"
fi

# --- Consul ----------------------------------------------------------------
if [ "$force" = 1 ] || ! consul_ok; then
	say "fetching $CONSUL_MODULE@v$CONSUL_VERSION"
	dir=$(fetch_module "$CONSUL_MODULE" "v$CONSUL_VERSION")
	src=$(copy_module consul "$dir")
	edits=()
	for m in "${CONSUL_NESTED[@]}"; do
		# Keep the version the go.mod requires; fail loudly if it requires none.
		v=$(cd "$src" && go mod edit -json | sed -n "/\"Path\": \"${CONSUL_MODULE//\//\\/}\/$m\"/{n;s/.*\"Version\": \"\([^\"]*\)\".*/\1/p;}")
		v=${v%%$'\n'*}
		[ -n "$v" ] || die "Consul's go.mod requires no version of $CONSUL_MODULE/$m"
		edits+=(-dropreplace="$CONSUL_MODULE/$m" -require="$CONSUL_MODULE/$m@$v")
	done
	(cd "$src" && go mod edit "${edits[@]}")
	ldflags="-s -w"
	date=$(module_time "$CONSUL_MODULE" "v$CONSUL_VERSION")
	[ -z "$date" ] || ldflags="$ldflags -X $CONSUL_MODULE/version.BuildDate=$date"
	# Consul's own builds are static (CGO_ENABLED=0).
	CGO_ENABLED=0 build consul "$src" Consul "$CONSUL_VERSION" -ldflags "$ldflags"
	chmod -R u+w "$src" && rm -rf "$src"
fi

nomad_ok || die "$BIN_DIR/nomad does not report Nomad v$NOMAD_VERSION"
consul_ok || die "$BIN_DIR/consul does not report Consul v$CONSUL_VERSION"
report
