#!/usr/bin/env bash
# Installs what berth's tests need on a fresh Debian machine and does
# nothing when it is already there: git and the OpenSSH client (the e2e
# tests push with the real git over real SSH), the locally built buildpack
# stack image (no image can be pulled on test machines), and Nomad and Consul
# for the nomad runtime's tests. Go and a running Docker engine are the
# prerequisites.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
command -v ssh >/dev/null || need+=(openssh-client)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "Go is required: https://go.dev/doc/install" >&2; exit 1; }
go mod download
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
	./scripts/build-test-stack.sh
	# The nomad runtime's tests run real Nomad 1.6.1 and Consul 1.14.11 dev
	# agents, built once from the Go module proxy (about 8 minutes) and cached.
	./scripts/install-nomad-consul.sh --quiet
else
	echo "test-deps: no Docker engine; the build and registry tests will be skipped" >&2
fi
