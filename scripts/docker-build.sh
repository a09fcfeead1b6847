#!/usr/bin/env bash
# Builds the Dockerfile, unchanged, with a real Docker engine on this machine, runs the
# image and checks it. No image registry is needed (none is reachable here): the base
# images are made locally. Everything runs in a temporary folder and is removed on exit.
#
#   1. installs what is missing, with apt: dockerd, containerd and runc (docker.io; the
#      docker CLI too if there is none), debootstrap, curl, ss (iproute2); it refuses a
#      package change that would remove a package, and keeps services from starting;
#   2. starts its own dockerd, under `nice`, on its own socket, data root and exec root in
#      the temporary folder: no bridge network, no iptables rules, no other daemon's files
#      (`dockerd --bridge=none --iptables=false --ip6tables=false`; its containerd is its
#      own child); the docker CLI talks to it through DOCKER_HOST alone;
#   3. makes the Dockerfile's base images: `debian:bookworm-slim` from `debootstrap
#      --variant=minbase bookworm` (from the mirror apt uses), trimmed as the official
#      slim image is (no docs, man pages, locales, apt lists), then `docker import`; and
#      `rust:RUST_VERSION-bookworm` (RUST_VERSION from the Dockerfile's ARG) from that
#      base plus gcc, libc6-dev and ca-certificates and this machine's own Rust toolchain
#      of that version, laid out as the official rust image lays it out, and the CA
#      certificates this machine adds to its trust store (a TLS-inspecting proxy's);
#   4. builds the Dockerfile, with this repository's working tree as the context (as
#      `docker build .` would), with the classic builder (DOCKER_BUILDKIT=0) and
#      `--network host`, so that cargo reaches crates.io; the Dockerfile is not changed;
#   5. runs the image on the host network with envoi on 127.0.0.1 only (never 0.0.0.0,
#      never a bridge), the example policy and a random shared secret mounted, hardened as
#      deploy/kubernetes.yaml runs it (--read-only, --cap-drop ALL, no-new-privileges),
#      and checks: the image's config, the process's user (uid/gid 10001, from `docker
#      exec` and from /proc on the host), its capabilities, no-new-privs, seccomp and
#      read-only root, the listening address, HEALTHCHECK turning `healthy`, `GET /` with
#      a token from `envoi token` answered with the expected secrets from the host and
#      from inside the container (bash's /dev/tcp), 401 without a token, `docker stop`
#      (SIGTERM) exiting 0 quickly with a clean "stopped" log line, the image's size;
#   6. prints PASS/FAIL per check with figures (each Dockerfile step's time among them),
#      and exits 1 if any check failed.
#
# On every exit path (success, failure, Ctrl-C) it removes its containers, stops the
# dockerd it started (and its containerd and shims if they outlive it), unmounts whatever
# is still mounted under its folder, and removes the folder. Re-running starts afresh.
#
# A run takes 6 minutes on 2 quiet cores, 15 to 20 on shared ones, most of it the fat-LTO release build
# inside the builder: too long for CI (.ci/run does not run it). README.md, "Docker",
# has the measured figures.
#
# Usage: sudo scripts/docker-build.sh     (must run as root: dockerd, debootstrap, apt)
#   ENVOI_DOCKER_ROOTFS_CACHE=FILE  keep the debootstrap tarball in FILE between runs:
#                                   used if it exists, written if not (default: none,
#                                   every run bootstraps afresh)
#   ENVOI_DOCKER_MIRROR=URL         the Debian mirror for debootstrap and the builder's
#                                   packages (default: the one in /etc/apt/sources*)
#   ENVOI_DOCKER_TOOLCHAIN=DIR      the Rust toolchain to put in the builder image
#                                   (default: RUST_VERSION's under rustup's toolchains)
#   ENVOI_DOCKER_NICE=N             niceness of dockerd, its containers and the build (15)
#   ENVOI_DOCKER_SAVE=FILE          `docker save` the built image to FILE before cleaning up
#   ENVOI_DOCKER_KEEP=1             keep the temporary folder's files (not the daemon)
#   TMPDIR                          where the temporary folder goes (default /tmp); it
#                                   needs about 10 GB free
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NICE=${ENVOI_DOCKER_NICE:-15}
ROOTFS_CACHE=${ENVOI_DOCKER_ROOTFS_CACHE:-}
KEEP=${ENVOI_DOCKER_KEEP:-0}
SAVE=${ENVOI_DOCKER_SAVE:-}
IMAGE=envoi:docker-build
FINAL_BASE=debian:bookworm-slim
RUN_UID=10001
RUN_GID=10001

step() { printf '\n==> %s  [%s]\n' "$*" "$(date -u +%T)"; }
die() {
  printf '\nFAIL: %s\n' "$*" >&2
  exit 1
}
now() { echo "${EPOCHREALTIME/./}"; } # microseconds
since() { # since START_MICROSECONDS: elapsed seconds, with one decimal
  local us=$(($(now) - $1))
  printf '%d.%01d' $((us / 1000000)) $((us % 1000000 / 100000))
}

RESULTS=()
FAILED=0
pass() {
  RESULTS+=("PASS  $*")
  printf '    PASS: %s\n' "$*"
}
fail() {
  RESULTS+=("FAIL  $*")
  FAILED=1
  printf '    FAIL: %s\n' "$*" >&2
}
summary() {
  local line
  printf '\n==> summary (total %s s)\n' "$(since "$STARTED")"
  for line in "${RESULTS[@]}"; do printf '  %s\n' "$line"; done
}

[[ $(id -u) == 0 ]] || die "must run as root (dockerd, debootstrap and apt-get need it)"
STARTED=$(now)

# ---------------------------------------------------------------------------------------
# Clean-up, on every exit path. Set up before anything is started.
WORK=
DOCKERD_PID=
CONTAINERD_PID=
CONTAINERS=()
POLICY_RC_D=
cleanup() {
  local status=$? pid mounts c
  set +e
  trap - EXIT INT TERM
  if [[ -n $DOCKERD_PID ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    for c in "${CONTAINERS[@]}"; do
      timeout 30 docker rm -f "$c" >/dev/null 2>&1
    done
    kill -TERM "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 1 200); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && kill -KILL "$DOCKERD_PID" 2>/dev/null
    wait "$DOCKERD_PID" 2>/dev/null
  fi
  if [[ -n $CONTAINERD_PID ]] && kill -0 "$CONTAINERD_PID" 2>/dev/null; then
    kill -TERM "$CONTAINERD_PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$CONTAINERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$CONTAINERD_PID" 2>/dev/null && kill -KILL "$CONTAINERD_PID" 2>/dev/null
  fi
  if [[ -n $WORK && -d $WORK ]]; then
    # Shims (or anything else) still running from this run's exec root, by pid.
    while read -r pid; do
      [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
      kill -KILL "$pid" 2>/dev/null
    done < <(grep -lsF -- "$WORK/" /proc/[0-9]*/cmdline | cut -d/ -f3)
    # What dockerd (or an interrupted debootstrap) left mounted, innermost first.
    mounts=$(findmnt -rn -o TARGET | awk -v w="$WORK" 'index($0, w "/") == 1 || $0 == w' | sort -r)
    for c in $mounts; do umount "$c" 2>/dev/null || umount -l "$c" 2>/dev/null; done
    if findmnt -rn -o TARGET | awk -v w="$WORK" 'index($0, w "/") == 1 { found = 1 } END { exit !found }'; then
      echo "warning: mounts remain under $WORK; not removing it" >&2
    elif [[ $KEEP == 1 ]]; then
      rm -rf --one-file-system "$WORK/data" "$WORK/exec"
      echo "kept $WORK (without the daemon's data root)"
    else
      rm -rf --one-file-system "$WORK"
    fi
  fi
  [[ -n $POLICY_RC_D ]] && rm -f "$POLICY_RC_D"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
step "what is needed (apt-get installs what is missing)"
packages=()
command -v dockerd >/dev/null 2>&1 || packages+=(docker.io)
command -v docker >/dev/null 2>&1 || { [[ ${packages[*]} == *docker.io* ]] || packages+=(docker.io); }
command -v debootstrap >/dev/null 2>&1 || packages+=(debootstrap)
command -v curl >/dev/null 2>&1 || packages+=(curl)
command -v ss >/dev/null 2>&1 || packages+=(iproute2)
command -v findmnt >/dev/null 2>&1 || packages+=(util-linux)
if [[ ${#packages[@]} -gt 0 ]]; then
  echo "    installing: ${packages[*]}"
  nice -n "$NICE" apt-get update -q >/dev/null
  plan=$(apt-get install -s --no-install-recommends "${packages[@]}")
  if grep -q '^Remv ' <<<"$plan"; then
    grep '^Remv ' <<<"$plan" >&2
    die "installing ${packages[*]} would remove the packages above; install them yourself"
  fi
  # Installing docker.io must not start Debian's own dockerd (with its bridge and
  # iptables rules): a policy-rc.d that says no, unless one is already in place.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    POLICY_RC_D=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC_D"
    chmod 0755 "$POLICY_RC_D"
  fi
  DEBIAN_FRONTEND=noninteractive nice -n "$NICE" apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null
  [[ -n $POLICY_RC_D ]] && rm -f "$POLICY_RC_D" && POLICY_RC_D=
fi
for tool in dockerd containerd runc docker debootstrap curl ss findmnt; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
echo "    docker CLI $(docker version --format '{{.Client.Version}}' 2>/dev/null || true), $(dockerd --version)"

# The builder's Rust: the Dockerfile's ARG RUST_VERSION, from this machine's toolchains.
RUST_VERSION=$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\).*/\1/p' "$REPO/Dockerfile" | head -n 1)
[[ -n $RUST_VERSION ]] || die "no ARG RUST_VERSION=… in the Dockerfile"
BUILDER_BASE=rust:$RUST_VERSION-bookworm
grep -q "^FROM rust:\${RUST_VERSION}-bookworm AS builder" "$REPO/Dockerfile" || die "the Dockerfile's builder is not rust:\${RUST_VERSION}-bookworm"
grep -q "^FROM $FINAL_BASE\$" "$REPO/Dockerfile" || die "the Dockerfile's final stage is not FROM $FINAL_BASE"
TRIPLE=x86_64-unknown-linux-gnu
[[ $(uname -m) == x86_64 ]] || die "this script knows only x86_64 (uname -m: $(uname -m))"
TOOLCHAIN=${ENVOI_DOCKER_TOOLCHAIN:-}
if [[ -z $TOOLCHAIN ]]; then
  toolchains=${RUSTUP_HOME:-$HOME/.rustup}/toolchains
  for candidate in "$toolchains/$RUST_VERSION-$TRIPLE" "$toolchains/$RUST_VERSION.0-$TRIPLE" "$toolchains/stable-$TRIPLE"; do
    if [[ -x $candidate/bin/rustc ]] && [[ $("$candidate/bin/rustc" --version) == "rustc $RUST_VERSION"[.\ ]* ]]; then
      TOOLCHAIN=$candidate
      break
    fi
  done
  [[ -n $TOOLCHAIN ]] || die "no Rust $RUST_VERSION toolchain under $toolchains (rustup toolchain install $RUST_VERSION, or set ENVOI_DOCKER_TOOLCHAIN)"
fi
TOOLCHAIN=$(readlink -f "$TOOLCHAIN")
RUSTC_VERSION=$("$TOOLCHAIN/bin/rustc" --version)
[[ $RUSTC_VERSION == "rustc $RUST_VERSION"[.\ ]* ]] || die "$TOOLCHAIN is $RUSTC_VERSION, not $RUST_VERSION"
FULL_VERSION=$(cut -d' ' -f2 <<<"$RUSTC_VERSION")
echo "    builder toolchain: $RUSTC_VERSION, from $TOOLCHAIN"

# The mirror apt uses (deb822 .sources files or one-line sources.list entries).
MIRROR=${ENVOI_DOCKER_MIRROR:-}
if [[ -z $MIRROR ]]; then
  MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]*\)\{0,1\}\([^[:space:]]*\).*/\2/p' |
    grep -v -- '-security' | grep -E '^https?://' | head -n 1 || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
echo "    Debian mirror: $MIRROR"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/envoi-docker-build.XXXXXX")
chmod 0755 "$WORK"
echo "    temporary folder: $WORK"
df -h "$WORK" | sed 's/^/    /'
avail_kb=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
[[ $avail_kb -ge $((10 * 1024 * 1024)) ]] || die "less than 10 GB free under $WORK"

# ---------------------------------------------------------------------------------------
step "dockerd of its own (nice $NICE, no bridge, no iptables), socket $WORK/docker.sock"
echo '{}' >"$WORK/daemon.json"
nice -n "$NICE" dockerd \
  --config-file "$WORK/daemon.json" \
  --bridge=none --iptables=false --ip6tables=false \
  --data-root "$WORK/data" --exec-root "$WORK/exec" --pidfile "$WORK/dockerd.pid" \
  -H "unix://$WORK/docker.sock" >"$WORK/dockerd.log" 2>&1 &
DOCKERD_PID=$!
export DOCKER_HOST=unix://$WORK/docker.sock DOCKER_BUILDKIT=0
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
ready=0
for _ in $(seq 1 300); do
  kill -0 "$DOCKERD_PID" 2>/dev/null || break
  if docker version >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[[ $ready == 1 ]] || { tail -n 20 "$WORK/dockerd.log" >&2; die "dockerd did not start"; }
CONTAINERD_PID=$(pgrep -P "$DOCKERD_PID" -x containerd | head -n 1 || true)
echo "    dockerd pid $DOCKERD_PID (nice $(ps -o ni= -p "$DOCKERD_PID" | tr -d ' ')), containerd pid ${CONTAINERD_PID:-?}, engine $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"

# ---------------------------------------------------------------------------------------
step "$FINAL_BASE from debootstrap --variant=minbase bookworm"
t=$(now)
if [[ -n $ROOTFS_CACHE && -s $ROOTFS_CACHE ]]; then
  echo "    from the cached tarball $ROOTFS_CACHE (ENVOI_DOCKER_ROOTFS_CACHE)"
  docker import - "$FINAL_BASE" <"$ROOTFS_CACHE" >/dev/null
else
  nice -n "$NICE" debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  # Trimmed as the official slim image is (its dpkg path-excludes), and without apt's
  # downloaded lists and packages.
  r=$WORK/rootfs
  find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$r"/usr/share/{man,info,groff,lintian,linda,locale}/* "$r"/var/lib/apt/lists/* \
    "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/log/*.log "$r"/var/log/apt/*
  if [[ -n $ROOTFS_CACHE ]]; then
    mkdir -p "$(dirname "$ROOTFS_CACHE")"
    tar --numeric-owner -C "$r" -c . >"$ROOTFS_CACHE.part" && mv "$ROOTFS_CACHE.part" "$ROOTFS_CACHE"
    docker import - "$FINAL_BASE" <"$ROOTFS_CACHE" >/dev/null
    echo "    cached the tarball in $ROOTFS_CACHE"
  else
    tar --numeric-owner -C "$r" -c . | docker import - "$FINAL_BASE" >/dev/null
  fi
  rm -rf --one-file-system "$r"
fi
BASE_SIZE=$(docker image inspect --format '{{.Size}}' "$FINAL_BASE")
echo "    $FINAL_BASE: $BASE_SIZE bytes, in $(since "$t") s"

# ---------------------------------------------------------------------------------------
step "$BUILDER_BASE: $FINAL_BASE + gcc, libc6-dev, ca-certificates + Rust $FULL_VERSION"
t=$(now)
ctx=$WORK/builder
mkdir -p "$ctx/toolchain"
# bin, lib, libexec and etc: the compilers and the standard library; share/ is docs.
for part in bin lib libexec etc; do
  [[ -e $TOOLCHAIN/$part ]] || continue
  cp -al "$TOOLCHAIN/$part" "$ctx/toolchain/" 2>/dev/null || cp -a "$TOOLCHAIN/$part" "$ctx/toolchain/"
done
# The certificate authorities this machine adds to its trust store (what
# update-ca-certificates reads from /usr/local/share/ca-certificates): where the way out
# goes through a TLS-inspecting proxy, as here, cargo's downloads need them. The builder
# image only: the final image has no CA store (envoi carries webpki-roots).
mkdir -p "$ctx/local-ca"
find /usr/local/share/ca-certificates -name '*.crt' -type f -exec cp {} "$ctx/local-ca/" \; 2>/dev/null || true
LOCAL_CAS=$(find "$ctx/local-ca" -name '*.crt' | wc -l)
copy_cas=
[[ $LOCAL_CAS -gt 0 ]] && copy_cas="COPY local-ca/ /usr/local/share/ca-certificates/"
# As the official rust image: RUSTUP_HOME and CARGO_HOME under /usr/local, cargo's bin
# folder first on PATH (here with links to the toolchain's programs, since there is no
# rustup proxy), and RUST_VERSION set.
cat >"$ctx/Dockerfile" <<EOF
FROM $FINAL_BASE
$copy_cas
RUN printf 'deb $MIRROR bookworm main\n' > /etc/apt/sources.list \\
    && apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \\
    && update-ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo RUST_VERSION=$FULL_VERSION
ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY toolchain /usr/local/rustup/toolchains/$FULL_VERSION-$TRIPLE
RUN mkdir -p /usr/local/cargo/bin \\
    && for p in /usr/local/rustup/toolchains/$FULL_VERSION-$TRIPLE/bin/*; do ln -s "\$p" /usr/local/cargo/bin/; done \\
    && chmod -R a+w /usr/local/cargo \\
    && rustc --version && cargo --version && cc --version | head -n 1
EOF
docker build --network host -t "$BUILDER_BASE" "$ctx" >"$WORK/builder-build.log" 2>&1 ||
  { tail -n 30 "$WORK/builder-build.log" >&2; die "the builder image did not build"; }
rm -rf "$ctx"
BUILDER_SIZE=$(docker image inspect --format '{{.Size}}' "$BUILDER_BASE")
echo "    $BUILDER_BASE: $BUILDER_SIZE bytes, in $(since "$t") s ($LOCAL_CAS local CA certificate(s) from /usr/local/share/ca-certificates)"
docker images --format '    {{.Repository}}:{{.Tag}}  {{.Size}}'

# ---------------------------------------------------------------------------------------
step "docker build --network host -t $IMAGE $REPO  (the Dockerfile unchanged; a fat-LTO release build, about 10 min)"
df -h "$WORK" | sed 's/^/    /'
t=$(now)
# Each line of the build's output stamped with the time it came (epoch seconds), so that
# each Dockerfile step's time can be told.
stamp() { while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line"; done; }
if nice -n "$NICE" docker build --network host -t "$IMAGE" "$REPO" 2>&1 | stamp >"$WORK/build.log"; then
  BUILD_TIME=$(since "$t")
  pass "docker build of the unchanged Dockerfile: $BUILD_TIME s"
else
  BUILD_TIME=$(since "$t")
  tail -n 40 "$WORK/build.log" >&2
  fail "docker build failed after $BUILD_TIME s (log above)"
  summary
  exit 1
fi
# Each step with its duration (from its line to the next step's, or to the end).
awk -v end="$(date +%s)" '
  / Step [0-9]+\// { if (step != "") printf "    %5d s  %s\n", $1 - at, step; at = $1; $1 = ""; step = substr($0, 2, 90) }
  END { if (step != "") printf "    %5d s  %s\n", end - at, step }' "$WORK/build.log"
grep -E 'Finished' "$WORK/build.log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[0-9]* */    /' || true

IMAGE_SIZE=$(docker image inspect --format '{{.Size}}' "$IMAGE")
IMAGE_MB=$(awk -v b="$IMAGE_SIZE" 'BEGIN { printf "%.1f", b / 1e6 }')
BIN_SIZE=$(docker run --rm --network none --entrypoint stat "$IMAGE" -c %s /usr/local/bin/envoi)
pass "image size: $IMAGE_SIZE bytes ($IMAGE_MB MB): $FINAL_BASE $BASE_SIZE + envoi $BIN_SIZE (stripped) + the user's layer"
docker history --format '    {{.Size}}\t{{.CreatedBy}}' "$IMAGE" | cut -c1-110

config_user=$(docker image inspect --format '{{.Config.User}}' "$IMAGE")
health=$(docker image inspect --format '{{if .Config.Healthcheck}}{{json .Config.Healthcheck.Test}}{{end}}' "$IMAGE")
entry=$(docker image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.WorkingDir}}' "$IMAGE")
if [[ $config_user == "$RUN_UID:$RUN_GID" && -n $health && $entry == '["envoi"] ["serve"] /etc/envoi' ]]; then
  pass "image config: USER $config_user, ENTRYPOINT/CMD/WORKDIR $entry, a HEALTHCHECK"
else
  fail "image config: USER '$config_user', '$entry', HEALTHCHECK '$health'"
fi
version=$(docker run --rm --network none "$IMAGE" --version 2>&1 || true)
if [[ $version == envoi\ * ]]; then pass "docker run $IMAGE --version: $version"; else fail "--version: $version"; fi

# ---------------------------------------------------------------------------------------
step "docker run --network host, envoi on 127.0.0.1 only, a policy and a shared secret mounted"
run=$WORK/run
mkdir -p "$run"
cp "$REPO/config/example-policy.toml" "$run/policy.toml"
head -c 48 /dev/urandom | base64 | tr -d '\n=' >"$run/platform_key"
# Readable by the image's user alone (as a Kubernetes secret with fsGroup would be).
chown "$RUN_UID:$RUN_GID" "$run/platform_key" "$run/policy.toml"
chmod 0400 "$run/platform_key"
chmod 0444 "$run/policy.toml"
PORT=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 40000))
  ss -Htln "sport = :$p" | grep -q . || { PORT=$p; break; }
done
[[ -n $PORT ]] || die "no free port found"
NAME=envoi-docker-build-$$
CONTAINERS+=("$NAME")
t=$(now)
# Hardened as deploy/kubernetes.yaml runs it: a read-only root file system, no
# capabilities, no privilege escalation (and Docker's default seccomp profile).
docker run -d --name "$NAME" --network host --health-interval=1s \
  --read-only --cap-drop ALL --security-opt no-new-privileges \
  -e ENVOI__SERVER__LISTEN="127.0.0.1:$PORT" \
  -e ENVOI__AUTH__SECRET_FILES=/run/secrets/platform_key \
  -e ENVOI__LOG__FORMAT=json \
  -v "$run/policy.toml:/etc/envoi/policy.toml:ro" \
  -v "$run/platform_key:/run/secrets/platform_key:ro" \
  "$IMAGE" >/dev/null
status=starting
while [[ $status == starting ]] && [[ $(since "$t" | cut -d. -f1) -lt 60 ]]; do
  sleep 0.1
  status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$NAME" 2>/dev/null || echo gone)
  [[ $(docker inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null) == true ]] || { status=exited; break; }
done
HEALTHY_TIME=$(since "$t")
if [[ $status == healthy ]]; then
  pass "HEALTHCHECK: healthy $HEALTHY_TIME s after docker run (--health-interval=1s)"
else
  docker logs "$NAME" 2>&1 | tail -n 20 >&2
  fail "HEALTHCHECK: '$status' after $HEALTHY_TIME s"
fi

HOST_PID=$(docker inspect --format '{{.State.Pid}}' "$NAME")
uids=$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$HOST_PID/status" 2>/dev/null || true)
gids=$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$HOST_PID/status" 2>/dev/null || true)
groups=$(awk '/^Groups:/ { $1 = ""; print }' "/proc/$HOST_PID/status" 2>/dev/null | xargs || true)
comm=$(cat "/proc/$HOST_PID/comm" 2>/dev/null || true)
cap_eff=$(awk '/^CapEff:/ { print $2 }' "/proc/$HOST_PID/status" 2>/dev/null || true)
no_new_privs=$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$HOST_PID/status" 2>/dev/null || true)
seccomp=$(awk '/^Seccomp:/ { print $2 }' "/proc/$HOST_PID/status" 2>/dev/null || true)
exec_id=$(docker exec "$NAME" id 2>&1 || true)
exec_ids=$(docker exec "$NAME" sh -c 'echo "$(id -u) $(id -g) $(id -G)"' 2>&1 || true)
want="$RUN_UID $RUN_UID $RUN_UID $RUN_UID"
if [[ $comm == envoi && $uids == "$want" && $gids == "$want" && $exec_ids == "$RUN_UID $RUN_GID $RUN_GID" ]]; then
  pass "non-root: host pid $HOST_PID ($comm, nice $(ps -o ni= -p "$HOST_PID" | tr -d ' ')) Uid/Gid $RUN_UID (real, effective, saved, fs), groups '${groups}'; docker exec id: $exec_id"
else
  fail "user: host pid $HOST_PID ($comm) Uid '$uids' Gid '$gids'; docker exec id: $exec_id"
fi
if [[ $cap_eff == 0000000000000000 && $no_new_privs == 1 && $seccomp == 2 ]] &&
  ! docker exec "$NAME" sh -c ': > /etc/envoi/probe || : > /tmp/probe' 2>/dev/null; then
  pass "hardened: no capabilities (CapEff $cap_eff), NoNewPrivs $no_new_privs, seccomp filter, read-only root file system (envoi serves on it)"
else
  fail "hardening: CapEff '$cap_eff' NoNewPrivs '$no_new_privs' Seccomp '$seccomp', or the root file system is writable"
fi

listening=$(ss -Htlnp "sport = :$PORT" | awk '{ print $4 }' | sort -u | xargs)
if [[ $listening == "127.0.0.1:$PORT" ]]; then
  pass "listening on $listening only (the host's network namespace, no bridge)"
else
  fail "listening on '$listening', expected 127.0.0.1:$PORT alone"
fi

TOKEN=$(docker exec "$NAME" envoi token --project billing --type service --id api --ttl 5m 2>/dev/null | tail -n 1 || true)
[[ $TOKEN == *.*.* ]] || fail "envoi token (docker exec) printed no token"
# billing/service/api's grants in config/example-policy.toml: everyone, billing and
# billing-api, the most specific winning LOG_LEVEL; and one file.
expected=('"key":"LOG_LEVEL"' '"value":"debug"' '"key":"REGION"' '"value":"eu-west"' '"key":"DB_PASSWORD"'
  '"value":"example-db-password"' '"key":"STRIPE_KEY"' '"value":"sk_test_example_4eC39HqLyjWDarjtT1zdp7dc"'
  '/etc/billing/tls.pem')
answers() { # answers TEXT: whether TEXT holds every expected fragment
  local fragment
  for fragment in "${expected[@]}"; do [[ $1 == *"$fragment"* ]] || return 1; done
}
code=$(curl -sS -o "$run/host.json" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/" || true)
body=$(cat "$run/host.json" 2>/dev/null || true)
if [[ $code == 200 ]] && answers "$body"; then
  pass "GET / from the host (curl http://127.0.0.1:$PORT/) with a token from \`envoi token\`: 200, billing/service/api's secrets ($(grep -o '"type"' <<<"$body" | wc -l) items)"
else
  fail "GET / from the host: $code $body"
fi
unauth=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
if [[ $unauth == 401 ]]; then pass "GET / without a token: 401"; else fail "GET / without a token: $unauth"; fi
# Inside the container: no curl in the slim image, bash's /dev/tcp instead.
inside=$(docker exec "$NAME" timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
  printf "GET / HTTP/1.0\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n\r\n" "$2" >&3 && cat <&3' _ "$PORT" "$TOKEN" 2>&1 || true)
if [[ $(head -n 1 <<<"$inside") == "HTTP/1."?" 200 "* ]] && answers "$inside"; then
  pass "GET / from inside the container (bash /dev/tcp): $(head -n 1 <<<"$inside" | tr -d '\r'), the same secrets"
else
  fail "GET / from inside the container: $inside"
fi
healthz=$(docker exec "$NAME" timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
  printf "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && head -n 1 <&3' _ "$PORT" 2>&1 | tr -d '\r' || true)
echo "    GET /healthz from inside: $healthz"

# ---------------------------------------------------------------------------------------
step "docker stop (SIGTERM; SIGKILL after 10 s)"
t=$(now)
docker stop -t 10 "$NAME" >/dev/null
STOP_TIME=$(since "$t")
exit_code=$(docker inspect --format '{{.State.ExitCode}}' "$NAME")
oom=$(docker inspect --format '{{.State.OOMKilled}}' "$NAME")
logs=$(docker logs "$NAME" 2>&1)
stopped_line=$(grep -m 1 '"message":"stopped"' <<<"$logs" || true)
if [[ $exit_code == 0 && $oom == false && $(cut -d. -f1 <<<"$STOP_TIME") -lt 10 && -n $stopped_line ]]; then
  pass "docker stop: exit code 0 in $STOP_TIME s, log: $stopped_line"
else
  fail "docker stop: exit code $exit_code (OOM $oom) after $STOP_TIME s; stopped line: '${stopped_line}'"
fi
echo "    the container's log (JSON on standard error):"
printf '%s\n' "$logs" | tail -n 8 | sed 's/^/      /'

if [[ -n $SAVE ]]; then
  docker save -o "$SAVE" "$IMAGE"
  echo "    saved $IMAGE to $SAVE ($(du -h "$SAVE" | cut -f1)); docker load -i $SAVE"
fi

summary
printf '  figures: total %s s, envoi image build %s s, image %s bytes (%s MB), healthy after %s s, stop %s s\n' \
  "$(since "$STARTED")" "$BUILD_TIME" "$IMAGE_SIZE" "$IMAGE_MB" "$HEALTHY_TIME" "$STOP_TIME"
if [[ $FAILED == 0 ]]; then
  echo "all checks passed"
else
  echo "some checks FAILED" >&2
  exit 1
fi
