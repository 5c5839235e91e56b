#!/usr/bin/env bash
# Installs what berth's tests need on a fresh Debian machine and does
# nothing when it is already there. Today: git (the e2e tests drive the real
# git client). Go itself is the one prerequisite.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing: ${need[*]}; install them (as root: apt-get install ${need[*]})" >&2
		exit 1
	fi
	apt-get update -qq
	apt-get install -y -qq "${need[@]}"
fi
command -v go >/dev/null || { echo "Go is required: https://go.dev/doc/install" >&2; exit 1; }
go mod download
