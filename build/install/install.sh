#!/bin/sh
# Installs the Hangar host agent on this machine, as a service that starts at boot.
#
#   curl -fsSL https://<your relay>/install.sh | sh -s -- --token hgr1_...
#
# What it does, in order (and it prints each step before taking it):
#   1. checks the system: Linux with systemd, or macOS; Node.js 20 or newer with npm;
#   2. installs the npm package hangar-agent with npm (npm downloads it; nothing else is fetched,
#      and no downloaded script is ever piped into a shell);
#   3. runs `hangar-agent install`, which checks tmux and bubblewrap, enrolls the host with the
#      relay the token names (when given one), writes the service and starts it (see
#      `hangar-agent install --help`).
#
# Options: --token T (enroll in the account that made the token), --name N (the host's name
#   there), --user | --system, --data DIR, --listen HOST:PORT, --version V (default: latest),
#   --registry URL (an npm registry other than npm's configured one; also what updates use),
#   --without-sandbox, --dry-run (print the steps, change nothing).
# As root it installs a system service (user hangar); otherwise, or with --user, a service of
# your own user, with the package under ~/.local.
#
# Everything is inside main(), called on the last line: piped into sh, nothing runs until the
# whole script has arrived, and a download cut short runs nothing.
set -eu

say() { printf '%s\n' "$*"; }
refuse() {
	say "hangar install: $*" >&2
	exit 1
}

main() {
	token=""
	name=""
	mode=""
	data=""
	listen=""
	version="latest"
	registry="${HANGAR_NPM_REGISTRY:-}"
	dry_run=""
	without_sandbox=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--token) [ $# -ge 2 ] || refuse "--token needs a value"; token="$2"; shift 2 ;;
		--name) [ $# -ge 2 ] || refuse "--name needs a value"; name="$2"; shift 2 ;;
		--user | --system) mode="$1"; shift ;;
		--data) [ $# -ge 2 ] || refuse "--data needs a directory"; data="$2"; shift 2 ;;
		--listen) [ $# -ge 2 ] || refuse "--listen needs host:port"; listen="$2"; shift 2 ;;
		--version) [ $# -ge 2 ] || refuse "--version needs a version"; version="$2"; shift 2 ;;
		--registry) [ $# -ge 2 ] || refuse "--registry needs a URL"; registry="$2"; shift 2 ;;
		--dry-run) dry_run="--dry-run"; shift ;;
		--without-sandbox) without_sandbox="--without-sandbox"; shift ;;
		-h | --help)
			say "usage: curl -fsSL https://<your relay>/install.sh | sh -s -- [--token hgr1_...] [--name N]"
			say "         [--user | --system] [--data DIR] [--listen HOST:PORT] [--version V] [--registry URL]"
			say "         [--without-sandbox] [--dry-run]"
			exit 0
			;;
		*) refuse "unknown option: $1 (see --help)" ;;
		esac
	done
	case "$version" in
	latest | [0-9]*.[0-9]*.[0-9]*) ;;
	*) refuse "--version $version: expected a version like 1.2.3, or latest" ;;
	esac

	# 1. The system.
	system="$(uname -s)"
	case "$system" in
	Linux)
		command -v systemctl >/dev/null 2>&1 ||
			refuse "this Linux has no systemd (systemctl not found). The service needs systemd; without it, run the agent by hand: npx hangar-agent serve"
		;;
	Darwin) ;;
	*) refuse "unsupported system: $system. The Hangar agent runs on Linux (with systemd) and macOS." ;;
	esac

	if ! command -v node >/dev/null 2>&1; then
		refuse "Node.js 20 or newer is needed and was not found on PATH; $(node_hint "$system")"
	fi
	node_major="$(node -p 'process.versions.node.split(".")[0]' </dev/null 2>/dev/null || echo 0)"
	case "$node_major" in '' | *[!0-9]*) node_major=0 ;; esac
	if [ "$node_major" -lt 20 ]; then
		refuse "Node.js 20 or newer is needed; this is $(node --version 2>/dev/null || echo 'an unknown version'); $(node_hint "$system")"
	fi
	command -v npm >/dev/null 2>&1 || refuse "npm was not found next to Node.js; install npm (it comes with Node.js from nodejs.org)"

	# Where the package goes: npm's global prefix as root (unless --user), else ~/.local.
	uid="$(id -u)"
	if [ "$uid" = 0 ] && [ "$mode" != "--user" ]; then
		prefix_args=""
		bin="hangar-agent"
		where="npm's global prefix"
	else
		[ "$mode" = "--system" ] && refuse "--system needs root: run it with sudo"
		[ -n "${HOME:-}" ] || refuse "HOME is not set"
		prefix_args="--prefix $HOME/.local"
		bin="$HOME/.local/bin/hangar-agent"
		where="$HOME/.local"
		mode="--user"
	fi

	registry_args=""
	[ -n "$registry" ] && registry_args="--registry $registry"
	shown_token=""
	[ -n "$token" ] && shown_token=" --token ${token%"${token#????}"}… (hidden)"

	say "Hangar agent installer, on $system with Node $(node --version). It will:"
	say "  1. npm install --global $prefix_args hangar-agent@$version $registry_args   (into $where)"
	say "  2. $bin install $mode${data:+ --data $data}${listen:+ --listen $listen}${registry:+ --registry $registry}$shown_token${name:+ --name $name}${without_sandbox:+ $without_sandbox}${dry_run:+ $dry_run}"
	[ -n "$dry_run" ] && say "(--dry-run: step 1 is skipped; step 2 prints what it would do)"

	# 2. The package. Word splitting of the *_args variables is intended (paths without spaces only).
	# Programs get /dev/null as stdin: piped into sh, stdin is the script itself.
	if [ -z "$dry_run" ]; then
		# shellcheck disable=SC2086
		npm install --global $prefix_args "hangar-agent@$version" $registry_args \
			--allow-scripts=better-sqlite3,node-pty,hangar-agent --no-audit --no-fund </dev/null ||
			refuse "npm could not install hangar-agent@$version (see npm's message above)"
	else
		bin="$(command -v hangar-agent 2>/dev/null || echo "$bin")"
	fi

	# 3. The service.
	set -- install $mode
	[ -n "$data" ] && set -- "$@" --data "$data"
	[ -n "$listen" ] && set -- "$@" --listen "$listen"
	[ -n "$registry" ] && set -- "$@" --registry "$registry"
	[ -n "$token" ] && set -- "$@" --token "$token"
	[ -n "$name" ] && set -- "$@" --name "$name"
	[ -n "$without_sandbox" ] && set -- "$@" --without-sandbox
	[ -n "$dry_run" ] && set -- "$@" --dry-run
	if [ -n "$dry_run" ] && ! [ -x "$bin" ] && ! command -v "$bin" >/dev/null 2>&1; then
		say "(dry run: hangar-agent is not installed yet, so its own plan cannot be shown)"
		exit 0
	fi
	exec "$bin" "$@" </dev/null
}

node_hint() {
	if [ "$1" = Darwin ]; then
		say "install it with: brew install node (or from https://nodejs.org/en/download), then run this again"
	else
		say "install it from your distribution if it ships Node 20+ (Debian 12's nodejs is 18: too old), or from https://nodejs.org/en/download (NodeSource packages), then run this again"
	fi
}

main "$@"
