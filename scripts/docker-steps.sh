#!/usr/bin/env bash
# Replays the Dockerfile without a Docker engine, to prove what can be proven here:
#
#   1. parses the Dockerfile (stages, COPY, RUN, WORKDIR, USER, ENV, HEALTHCHECK,
#      ENTRYPOINT, CMD) and .dockerignore;
#   2. builder stage: copies what each COPY names from the build context (minus what
#      .dockerignore leaves out, file times kept, as COPY does) into a temporary folder
#      laid out like the builder's file system, and runs each RUN there with /bin/sh -c,
#      in order: the placeholder build with its stubs, then the real build (--locked);
#   3. final stage: copies what COPY --from=builder takes into a second temporary root,
#      checks the binary's shared libraries and glibc symbol versions against Debian
#      bookworm, then runs it as the image's non-root user (setpriv: the image's uid/gid,
#      no supplementary groups, no capabilities, no new privileges) in a working
#      directory it cannot write to:
#        - `envoi --version`;
#        - `envoi serve --dev` on a free port: /healthz, the printed curl line, the
#          HEALTHCHECK command, SIGTERM;
#        - `envoi serve` (ENTRYPOINT + CMD) with a policy in WORKDIR, a signing key in a
#          group-readable file and an admin listener, as deploy/kubernetes.yaml runs it:
#          /readyz, GET / with a token, /metrics, the HEALTHCHECK command, SIGTERM;
#        - the HEALTHCHECK command once more after the server stopped: it must fail.
#
# What it cannot prove is printed at the end (and listed in deploy/README.md): the base
# images themselves, the builder's network access to crates.io, the final stage's RUN,
# the image's size and layers.
#
# Usage: scripts/docker-steps.sh
#   DOCKER_STEPS_TARGET_DIR  cargo's target folder, kept between runs
#                            (default: target/docker-steps in this repository, which
#                            .gitignore and .dockerignore already leave out)
#   DOCKER_STEPS_FRESH=1     use a throw-away target folder instead (a cold build, as in
#                            Docker: about 3 min on 2 cores; a warm run takes about 30 s)
#   DOCKER_STEPS_OFFLINE=0   let cargo reach crates.io (default: offline, from the cache)
#   DOCKER_STEPS_KEEP=1      keep the temporary folder for inspection
#   DOCKER_STEPS_GIT_REF=REF build context from a commit (`git archive REF`) instead of
#                            the working tree, with the working tree's Dockerfile and
#                            .dockerignore laid over it: proves the committed sources
#                            while someone edits the working tree
#
# Needs: bash, python3, cargo/rustc, curl, setpriv (util-linux) or runuser, objdump or
# ldd. Must run as root to switch to the image's user; otherwise it runs as the current
# (already unprivileged) user and says so.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONTEXT=$REPO
DOCKERFILE=${DOCKERFILE:-$REPO/Dockerfile}
FRESH=${DOCKER_STEPS_FRESH:-0}
OFFLINE=${DOCKER_STEPS_OFFLINE:-1}
KEEP=${DOCKER_STEPS_KEEP:-0}

WORK=$(mktemp -d /tmp/envoi-docker-steps.XXXXXX)
if [[ $FRESH == 1 ]]; then
  TARGET_DIR=$WORK/cargo-target
else
  TARGET_DIR=${DOCKER_STEPS_TARGET_DIR:-$REPO/target/docker-steps}
fi
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $KEEP == 1 ]]; then
    echo "kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

STARTED=$SECONDS
if [[ -n ${DOCKER_STEPS_GIT_REF:-} ]]; then
  CONTEXT=$WORK/context
  mkdir -p "$CONTEXT"
  git -C "$REPO" archive "$DOCKER_STEPS_GIT_REF" | tar -x -C "$CONTEXT"
  cp "$DOCKERFILE" "$CONTEXT/Dockerfile"
  [[ -f $REPO/.dockerignore ]] && cp "$REPO/.dockerignore" "$CONTEXT/.dockerignore"
  DOCKERFILE=$CONTEXT/Dockerfile
  echo "build context: $DOCKER_STEPS_GIT_REF ($(git -C "$REPO" rev-parse --short "$DOCKER_STEPS_GIT_REF")) with the working tree's Dockerfile and .dockerignore"
else
  echo "build context: the working tree, $CONTEXT"
fi
PROVEN=()
step() { printf '\n==> %s\n' "$*"; }
ok() {
  printf '    ok: %s\n' "$*"
  PROVEN+=("$*")
}
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------
# The Dockerfile and .dockerignore, read by a small Python helper.
cat >"$WORK/dockerfile.py" <<'PYTHON'
"""Reads a Dockerfile into shell assignments, and copies like COPY does."""
import fnmatch, json, os, re, shlex, shutil, sys


def logical_lines(text):
    """Instructions, with line continuations joined and comment lines dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if raw.rstrip().endswith("\\"):
            # Docker drops the backslash and the line break, nothing else.
            current += raw.rstrip()[:-1]
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def substitute(text, args):
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)


def split_flags(words):
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def exec_or_shell(rest):
    rest = rest.strip()
    if rest.startswith("["):
        try:
            return json.loads(rest)
        except ValueError:
            pass
    return ["/bin/sh", "-c", rest]


def parse(path):
    global_args, stages = {}, []
    for line in logical_lines(open(path).read()):
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        rest = rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name] = default
            continue
        if instruction == "FROM":
            words = rest.split()
            _, words = split_flags(words)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append({"name": name, "image": substitute(words[0], global_args), "steps": []})
            continue
        if not stages:
            raise SystemExit(f"{path}: {instruction} before FROM")
        stages[-1]["steps"].append((instruction, rest))
    return global_args, stages


def plan(path):
    global_args, stages = parse(path)
    final = stages[-1]
    froms = set()
    for instruction, rest in final["steps"]:
        if instruction == "COPY":
            flags, _ = split_flags(shlex.split(rest))
            if "from" in flags:
                froms.add(flags["from"])
    if len(froms) != 1:
        raise SystemExit(f"{path}: expected the final stage to COPY --from one builder stage, found {sorted(froms)}")
    builder = next(s for s in stages if s["name"] in froms)
    out = []

    def emit(name, value):
        out.append(f"{name}={shlex.quote(value)}")

    def emit_array(name, values):
        out.append(f"{name}=(" + " ".join(shlex.quote(v) for v in values) + ")")

    emit("GLOBAL_ARGS", " ".join(f"{k}={v}" for k, v in global_args.items()))
    emit("BUILDER_NAME", builder["name"])
    emit("BUILDER_IMAGE", builder["image"])
    kinds, bodies = [], []
    for instruction, rest in builder["steps"]:
        if instruction in ("COPY", "ADD"):
            flags, words = split_flags(shlex.split(rest))
            unsupported = set(flags) - {"link"}
            if instruction == "ADD" or unsupported:
                raise SystemExit(f"builder: {instruction} {rest}: not supported by this script")
            kinds.append("COPY")
            bodies.append(" ".join(shlex.quote(w) for w in words))
        elif instruction == "RUN":
            kinds.append("RUN")
            bodies.append(rest)
        elif instruction in ("WORKDIR", "ENV", "ARG"):
            kinds.append(instruction)
            bodies.append(rest)
        elif instruction in ("LABEL", "SHELL", "USER"):
            if instruction != "LABEL":
                raise SystemExit(f"builder: {instruction}: not supported by this script")
        else:
            raise SystemExit(f"builder: {instruction}: not supported by this script")
    emit_array("BUILDER_KIND", kinds)
    emit_array("BUILDER_BODY", bodies)

    emit("FINAL_IMAGE", final["image"])
    runs, copies, envs, exposes = [], [], [], []
    workdir, user, health_options, health, entrypoint, cmd = "/", "0", "", [], [], []
    for instruction, rest in final["steps"]:
        if instruction == "RUN":
            runs.append(rest)
        elif instruction == "COPY":
            flags, words = split_flags(shlex.split(rest))
            if flags.get("from") != builder["name"] or len(words) != 2:
                raise SystemExit(f"final: COPY {rest}: only `COPY --from={builder['name']} SRC DEST` is supported")
            copies.append(f"{words[0]}|{words[1]}")
        elif instruction == "WORKDIR":
            workdir = os.path.join(workdir, rest)
        elif instruction == "USER":
            user = rest
        elif instruction == "ENV":
            if "=" not in rest.split()[0]:
                key, _, value = rest.partition(" ")
                envs.append(f"{key}={value.strip()}")
            else:
                envs.extend(shlex.split(rest))
        elif instruction == "EXPOSE":
            exposes.extend(rest.split())
        elif instruction == "HEALTHCHECK":
            match = re.match(r"((?:--\S+\s+)*)(?:CMD\s+(.*)|NONE)\Z", rest, re.S | re.I)
            if not match:
                raise SystemExit(f"HEALTHCHECK {rest}: cannot parse")
            health_options = " ".join(match.group(1).split())
            health = exec_or_shell(match.group(2)) if match.group(2) else []
        elif instruction == "ENTRYPOINT":
            entrypoint = exec_or_shell(rest)
        elif instruction == "CMD":
            cmd = exec_or_shell(rest)
        elif instruction in ("LABEL", "STOPSIGNAL", "ARG"):
            pass
        else:
            raise SystemExit(f"final: {instruction}: not supported by this script")
    emit_array("FINAL_RUN", runs)
    emit_array("FINAL_COPY", copies)
    emit("FINAL_WORKDIR", workdir)
    emit("FINAL_USER", user)
    emit_array("FINAL_ENV", envs)
    emit_array("FINAL_EXPOSE", exposes)
    emit("HEALTH_OPTIONS", health_options)
    emit_array("HEALTH_CMD", health)
    emit_array("ENTRYPOINT", entrypoint)
    emit_array("CMD", cmd)
    print("\n".join(out))


def ignore_rules(context):
    rules = []
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return rules
    for line in open(path).read().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def ignored(rules, relative):
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            verdict = not negate
    return verdict


def copy(context, workdir, words):
    """COPY SRC... DEST, relative to the build context and to WORKDIR; keeps times."""
    *sources, dest = words
    rules = ignore_rules(context)
    dest_path = dest if os.path.isabs(dest) else os.path.join(workdir, dest)
    as_folder = dest.endswith("/") or len(sources) > 1
    for source in sources:
        matches = sorted(fnmatch.filter(os_walk_all(context), os.path.normpath(source))) or [os.path.normpath(source)]
        copied = 0
        for match in matches:
            full = os.path.join(context, match)
            if not os.path.exists(full):
                continue
            if os.path.isdir(full):
                for folder, _, files in os.walk(full):
                    for name in sorted(files):
                        inner = os.path.relpath(os.path.join(folder, name), context)
                        if ignored(rules, inner):
                            continue
                        target = os.path.join(dest_path, os.path.relpath(os.path.join(folder, name), full))
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        shutil.copy2(os.path.join(folder, name), target)
                        copied += 1
            else:
                if ignored(rules, match):
                    continue
                target = os.path.join(dest_path, os.path.basename(match)) if as_folder else dest_path
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copy2(full, target)
                copied += 1
        if copied == 0:
            raise SystemExit(f"COPY {source}: nothing in the build context (missing, or left out by .dockerignore)")
        print(f"    COPY {source} -> {dest}: {copied} file(s)")


def os_walk_all(context):
    """Top-level names of the context, for COPY globs."""
    return os.listdir(context)


if __name__ == "__main__":
    if sys.argv[1] == "plan":
        plan(sys.argv[2])
    elif sys.argv[1] == "copy":
        copy(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "ignored":
        rules = ignore_rules(sys.argv[2])
        for path in sys.argv[3:]:
            print(f"{path}\t{'ignored' if ignored(rules, path) else 'kept'}")
PYTHON

step "parsing $DOCKERFILE"
PLAN=$(python3 "$WORK/dockerfile.py" plan "$DOCKERFILE") || fail "cannot parse the Dockerfile"
eval "$PLAN"
printf '    builder stage `%s` FROM %s: %d steps\n' "$BUILDER_NAME" "$BUILDER_IMAGE" "${#BUILDER_KIND[@]}"
printf '    final stage FROM %s; WORKDIR %s; USER %s; ENTRYPOINT %s; CMD %s\n' \
  "$FINAL_IMAGE" "$FINAL_WORKDIR" "$FINAL_USER" "${ENTRYPOINT[*]}" "${CMD[*]}"
[[ ${ENTRYPOINT[*]} == envoi && ${CMD[*]} == serve ]] || fail 'expected ENTRYPOINT ["envoi"] and CMD ["serve"]'
[[ ${#HEALTH_CMD[@]} -gt 0 ]] || fail "the final stage has no HEALTHCHECK CMD"
ok "Dockerfile parsed: multi-stage, ENTRYPOINT [\"envoi\"], CMD [\"serve\"], HEALTHCHECK present"

# The image's user: USER, numeric (Kubernetes' runAsNonRoot needs a number), not root.
RUN_UID=${FINAL_USER%%:*}
RUN_GID=${FINAL_USER#*:}
[[ $RUN_GID == "$FINAL_USER" ]] && RUN_GID=$RUN_UID
[[ $RUN_UID =~ ^[0-9]+$ && $RUN_GID =~ ^[0-9]+$ ]] || fail "USER $FINAL_USER is not numeric: runAsNonRoot cannot verify it"
[[ $RUN_UID != 0 ]] || fail "the image runs as root"
ok "USER $FINAL_USER: numeric and not root"

step "the toolchain"
RUSTC=$(rustc --version)
WANT_RUST=$(sed -n 's/.*RUST_VERSION=\([0-9.]*\).*/\1/p' <<<"$GLOBAL_ARGS")
echo "    Dockerfile builds with $BUILDER_IMAGE; here: $RUSTC"
if [[ -n $WANT_RUST && $RUSTC == "rustc $WANT_RUST"* ]]; then
  ok "local rustc matches the builder image's Rust $WANT_RUST"
else
  echo "    note: the builder image's Rust (${WANT_RUST:-unknown}) is not the local one; the build below uses the local one"
fi
. /etc/os-release 2>/dev/null || true
echo "    host: ${PRETTY_NAME:-unknown}, $(ldd --version 2>/dev/null | head -n 1)"

# ---------------------------------------------------------------------------------------
step "builder stage, replayed in $WORK/builder-root"
BROOT=$WORK/builder-root
mkdir -p "$BROOT" "$TARGET_DIR"
echo "    cargo target folder: $TARGET_DIR ($([[ $FRESH == 1 ]] && echo 'fresh, removed at the end' || echo 'kept between runs'))"
export CARGO_TERM_COLOR=never
unset CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR
if [[ $OFFLINE == 1 ]]; then
  export CARGO_NET_OFFLINE=true
  echo "    cargo runs offline (crates come from the local cache; DOCKER_STEPS_OFFLINE=0 allows crates.io)"
fi
workdir=/
declare -a STAGE_ENV=()
for i in "${!BUILDER_KIND[@]}"; do
  kind=${BUILDER_KIND[$i]}
  body=${BUILDER_BODY[$i]}
  here=$BROOT${workdir%/}
  case $kind in
    WORKDIR)
      [[ $body == /* ]] && workdir=$body || workdir=${workdir%/}/$body
      mkdir -p "$BROOT$workdir"
      echo "    WORKDIR $workdir"
      # cargo's output goes to the kept target folder: the layout (target/release/...)
      # is the same as in the image.
      [[ -e $BROOT$workdir/target ]] || ln -s "$TARGET_DIR" "$BROOT$workdir/target"
      ;;
    ENV | ARG)
      [[ $body == *=* ]] && STAGE_ENV+=("$body")
      echo "    $kind $body"
      ;;
    COPY)
      eval "words=($body)"
      python3 "$WORK/dockerfile.py" copy "$CONTEXT" "$here" "${words[@]}" || fail "COPY $body"
      ;;
    RUN)
      # Every RUN of the builder must stay inside its working folder: refuse absolute paths.
      if python3 -c 'import shlex,sys; sys.exit(any(w.startswith("/") for w in shlex.split(sys.argv[1], comments=False)))' "$body"; then :; else
        fail "RUN names an absolute path; this script runs builder steps only inside $BROOT: $body"
      fi
      [[ $here == "$WORK"/* && -d $here ]] || fail "RUN outside the temporary folder ($here)"
      printf '    RUN %s\n' "$(head -c 300 <<<"$body" | tr '\n' ' ')"
      t0=$SECONDS
      set +e
      (cd "$here" && env "${STAGE_ENV[@]}" /bin/sh -c "$body") 2>&1 | tee "$WORK/run-$i.log" |
        grep --line-buffered -Ev '^ *Compiling [^ ]+ v[^ ]+$' | sed -u 's/^/      | /'
      status=${PIPESTATUS[0]}
      set -e
      [[ $status == 0 ]] || fail "RUN failed (status $status; log: $WORK/run-$i.log): $body"
      echo "    (RUN took $((SECONDS - t0)) s)"
      ;;
  esac
done
ok "builder steps ran in order in a copy of the build context: placeholder build with stubs, then the real build, --locked"

# Which target paths Cargo.toml declares, and whether the placeholder step gave each one a stub.
step "placeholder coverage: every target path Cargo.toml declares"
missing=0
while read -r kind path; do
  relative=${path#"$CONTEXT"/}
  if [[ $relative == src/* ]]; then
    echo "    $kind $relative: real source (COPY src)"
  elif [[ -e $BROOT$workdir/$relative ]]; then
    echo "    $kind $relative: stub left by the placeholder step"
  elif [[ $kind == example || $kind == test ]]; then
    # Found by cargo's auto-discovery in folders that are not copied: absent in the image.
    echo "    $kind $relative: auto-discovered here, absent from the image (not built there)"
  else
    echo "    $kind $relative: MISSING in the builder"
    missing=1
  fi
done < <(cd "$CONTEXT" && cargo metadata --no-deps --format-version 1 --offline 2>/dev/null |
  python3 -c 'import json,sys; [print(t["kind"][0], t["src_path"]) for p in json.load(sys.stdin)["packages"] for t in p["targets"]]')
[[ $missing == 0 ]] || fail "a declared target path has neither a source nor a stub in the builder"
ok "every target Cargo.toml declares explicitly has a source or a stub in the builder"

# .dockerignore keeps the large folders out and the copied ones in.
step ".dockerignore"
python3 "$WORK/dockerfile.py" ignored "$CONTEXT" target target/release/envoi fuzz/target fuzz/corpus .git/HEAD \
  src/main.rs Cargo.toml Cargo.lock config/default.toml migrations | sed 's/^/    /'
verdicts=$(python3 "$WORK/dockerfile.py" ignored "$CONTEXT" target fuzz/target .git/HEAD src/main.rs Cargo.lock config/default.toml migrations | cut -f2 | tr '\n' ' ')
[[ $verdicts == "ignored ignored ignored kept kept kept kept " ]] || fail ".dockerignore: unexpected verdicts: $verdicts"
ok ".dockerignore leaves out target/, fuzz/target and .git/, and keeps what COPY needs"

# ---------------------------------------------------------------------------------------
step "final stage, laid out in $WORK/image-root"
IROOT=$WORK/image-root
mkdir -p "$IROOT"
for copy in "${FINAL_COPY[@]}"; do
  src=${copy%%|*}
  dest=${copy#*|}
  [[ -f $BROOT$src ]] || fail "COPY --from=$BUILDER_NAME $src: no such file in the builder"
  mkdir -p "$IROOT$(dirname "$dest")"
  cp -L "$BROOT$src" "$IROOT$dest"
  chmod 0755 "$IROOT$dest"
  echo "    COPY --from=$BUILDER_NAME $src -> $dest ($(du -h "$IROOT$dest" | cut -f1))"
done
BIN=$IROOT/usr/local/bin/envoi
[[ -x $BIN ]] || fail "no /usr/local/bin/envoi in the final stage"
mkdir -p "$IROOT$FINAL_WORKDIR"
# Root-owned and read-only to the image's user, as /etc/envoi is in the image (and the
# whole root file system is under readOnlyRootFilesystem in Kubernetes).
chmod 0755 "$WORK" "$IROOT" "$IROOT/etc" "$IROOT$FINAL_WORKDIR" 2>/dev/null || true
find "$IROOT" -type d -exec chmod 0755 {} +

echo "    final-stage RUN (not executed here: it would change this machine's users):"
for run in "${FINAL_RUN[@]}"; do
  printf '      %s\n' "$(tr '\n' ' ' <<<"$run" | tr -s ' ')"
  for tool in $(grep -oE '(^|&& *)[a-z-]+' <<<"$run" | sed 's/&& *//'); do
    command -v "$tool" >/dev/null || fail "final-stage RUN uses $tool, which this Debian does not have"
  done
  if grep -q 'apt-get' <<<"$run"; then echo "    note: the final stage runs apt-get (unproven here)"; fi
  if grep -q -- "--uid $RUN_UID" <<<"$run" && grep -q -- "--gid $RUN_GID" <<<"$run"; then
    ok "the final stage's RUN names uid $RUN_UID / gid $RUN_GID for groupadd/useradd, the numeric USER (read, not run)"
  fi
done

step "the binary's needs, against Debian bookworm (debian:bookworm-slim)"
file "$BIN" 2>/dev/null | sed "s|$IROOT||; s/^/    /" || true
glibc_max=$( (objdump -T "$BIN" 2>/dev/null || true) | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)*' | sort -uV | tail -n 1)
echo "    newest glibc symbol version needed: ${glibc_max:-unknown} (bookworm has GLIBC_2.36)"
if [[ -n $glibc_max ]] && printf '%s\nGLIBC_2.36\n' "$glibc_max" | sort -V -C; then
  ok "glibc symbols needed ($glibc_max) are all in bookworm's glibc 2.36"
else
  fail "the binary needs $glibc_max, newer than bookworm's glibc 2.36"
fi
libs=$(ldd "$BIN" | awk '/=>/ {print $3} /ld-linux/ && !/=>/ {print $1}' | sort -u)
packages=$(for lib in $libs; do dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || echo "?: $lib"; done | cut -d: -f1 | sort -u | tr '\n' ' ')
echo "    shared libraries: $(tr '\n' ' ' <<<"$libs")"
echo "    from packages: $packages"
# minbase (what debian:*-slim holds): Essential and Priority required packages, and what they depend on.
base_ok=$(dpkg-query -W -f='${Package}\t${Essential}\t${Priority}\t${Pre-Depends}, ${Depends}\n' 2>/dev/null | python3 -c '
import re, sys
rows = {}
for line in sys.stdin:
    name, essential, priority, deps = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
    rows[name] = (essential == "yes" or priority == "required", [re.split(r"[ (:]", d.strip())[0] for d in re.split(r"[,|]", deps) if d.strip()])
base = {n for n, (core, _) in rows.items() if core}
todo = list(base)
while todo:
    for dep in rows.get(todo.pop(), (False, []))[1]:
        if dep in rows and dep not in base:
            base.add(dep); todo.append(dep)
wanted = sys.argv[1].split()
print(" ".join(w for w in wanted if w not in base))
' "$packages")
if [[ -z ${base_ok// /} ]]; then
  ok "every shared library comes from a package of Debian's minimal base ($packages)"
else
  fail "shared libraries from packages outside Debian's minimal base: $base_ok"
fi
health_tools=$(for tool in bash head grep; do { dpkg -S "/bin/$tool" 2>/dev/null || dpkg -S "/usr/bin/$tool"; } | cut -d: -f1; done | sort -u | tr '\n' ' ')
essential=$(for p in $health_tools; do dpkg-query -W -f='${Essential}' "$p"; echo; done | sort -u | tr -d '\n')
[[ $essential == yes ]] || fail "the HEALTHCHECK's tools ($health_tools) are not all Essential packages"
ok "the HEALTHCHECK needs bash, head and grep: Essential packages ($health_tools), in every Debian image"

# ---------------------------------------------------------------------------------------
# Running it as the image would.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
  AS_USER=(setpriv --reuid="$RUN_UID" --regid="$RUN_GID" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs)
  WHO="uid $RUN_UID gid $RUN_GID (setpriv: no supplementary groups, no capabilities, no new privileges)"
elif [[ $(id -u) == 0 ]] && command -v runuser >/dev/null; then
  AS_USER=(runuser -u nobody --)
  WHO="nobody (runuser; setpriv is missing)"
else
  AS_USER=()
  WHO="$(id -un) (uid $(id -u)): not root, so not switched to the image's uid"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# The image's environment: Debian's PATH with the copied binary first, the Dockerfile's ENV,
# then the run's own settings. $1: the port for ENVOI__SERVER__LISTEN.
image_env() {
  local port=$1
  shift
  local e vars=(PATH="$IROOT/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/nonexistent)
  for e in "${FINAL_ENV[@]}"; do
    [[ $e == ENVOI__SERVER__LISTEN=* ]] && e="ENVOI__SERVER__LISTEN=${e#*=}" && e="${e%:*}:$port"
    vars+=("$e")
  done
  printf '%s\0' "${vars[@]}" "$@"
}
# image_command PORT [VAR=VALUE...] -- COMMAND...: sets COMMAND_LINE to run COMMAND in
# the image's environment, as its user.
image_command() {
  local port=$1 vars=() envs=()
  shift
  while [[ $1 != -- ]]; do vars+=("$1"); shift; done
  shift
  mapfile -d '' envs < <(image_env "$port" "${vars[@]}")
  COMMAND_LINE=(env -i "${envs[@]}" "${AS_USER[@]}" "$@")
}
in_image() { # in_image PORT [VAR=VALUE...] -- COMMAND...: runs it in the foreground
  image_command "$@"
  (cd "$IROOT$FINAL_WORKDIR" && exec "${COMMAND_LINE[@]}")
}
start_in_image() { # start_in_image OUT ERR PORT [VAR=VALUE...] -- COMMAND...: sets STARTED_PID
  local out=$1 err=$2
  shift 2
  image_command "$@"
  # One subshell that execs: STARTED_PID is envoi's own pid, which SIGTERM reaches.
  (cd "$IROOT$FINAL_WORKDIR" && exec "${COMMAND_LINE[@]}") >"$out" 2>"$err" &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
}
wait_for() { # wait_for URL SECONDS
  local _
  for _ in $(seq 1 $(($2 * 10))); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
healthcheck() { # healthcheck PORT [VAR=VALUE...]: the HEALTHCHECK command, with its 3 s timeout
  local port=$1
  shift
  in_image "$port" "$@" -- timeout 3 "${HEALTH_CMD[@]}"
}
stop() { # stop PID: SIGTERM, as `docker stop` sends; the process must exit 0 within 10 s
  local pid=$1 status=0
  [[ $(ps -o comm= -p "$pid") == envoi ]] || fail "pid $pid is $(ps -o comm= -p "$pid"), not envoi"
  kill -TERM "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && fail "envoi did not stop within 10 s of SIGTERM"
  wait "$pid" || status=$?
  [[ $status == 0 ]] || fail "envoi exited with status $status after SIGTERM"
}

step "running the image's binary as $WHO, in $FINAL_WORKDIR (not writable to it)"
[[ $(in_image 8080 -- sh -c 'command -v envoi') == "$BIN" ]] || fail "ENTRYPOINT envoi does not resolve to /usr/local/bin/envoi"
if [[ ${#AS_USER[@]} -gt 0 ]]; then
  [[ $(in_image 8080 -- id -u) == "$RUN_UID" ]] || fail "not running as uid $RUN_UID"
  in_image 8080 -- sh -c 'touch probe 2>/dev/null' && fail "the working directory is writable by the image's user"
fi
version=$(in_image 8080 -- "${ENTRYPOINT[@]}" --version) || fail "envoi --version failed"
echo "    $ envoi --version"
echo "    $version"
[[ $version == envoi\ * ]] || fail "unexpected --version output"
ok "\`envoi --version\` runs as the image's user: $version"

step "envoi serve --dev (ENTRYPOINT + serve --dev), then the HEALTHCHECK against it"
PORT=$(free_port)
start_in_image "$WORK/dev.out" "$WORK/dev.err" "$PORT" -- "${ENTRYPOINT[@]}" serve --dev
DEV_PID=$STARTED_PID
wait_for "http://127.0.0.1:$PORT/healthz" 15 || { cat "$WORK/dev.err" >&2; fail "serve --dev did not answer /healthz"; }
echo "    GET /healthz: $(curl -fsS "http://127.0.0.1:$PORT/healthz")"
token=$(grep -o "Bearer [^']*" "$WORK/dev.out" | head -n 1 | cut -d' ' -f2)
[[ -n $token ]] || fail "serve --dev printed no curl line with a token"
answer=$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/")
[[ $answer == '{"secrets":['*'"key":"STRIPE_KEY"'* ]] || fail "the printed curl line did not get billing/service/api's secrets"
echo "    GET / with the printed token: 200, $(grep -o '"type"' <<<"$answer" | wc -l) item(s)"
ok "\`envoi serve --dev\` answers /healthz and the curl line it prints"
healthcheck "$PORT" || fail "the HEALTHCHECK command failed against serve --dev"
ok "the HEALTHCHECK command (${HEALTH_OPTIONS}) exits 0 against the dev server, via ENVOI__SERVER__LISTEN's port"
stop "$DEV_PID"
ok "serve --dev exits 0 on SIGTERM"

step "envoi serve (ENTRYPOINT + CMD) with a policy in WORKDIR, a key file and an admin listener"
mkdir -p "$WORK/secrets"
python3 -c 'import secrets; print(secrets.token_urlsafe(48))' >"$WORK/secrets/platform_key"
# As a Kubernetes secret volume with fsGroup: root-owned, group-readable by the image's group.
chown "0:$RUN_GID" "$WORK/secrets/platform_key" 2>/dev/null || true
chmod 0440 "$WORK/secrets/platform_key"
chmod 0755 "$WORK/secrets"
cp "$CONTEXT/config/example-policy.toml" "$IROOT$FINAL_WORKDIR/policy.toml"
chmod 0444 "$IROOT$FINAL_WORKDIR/policy.toml"
PORT=$(free_port)
ADMIN=$(free_port)
settings=(ENVOI__AUTH__SECRET_FILES="$WORK/secrets/platform_key" ENVOI__SERVER__ADMIN_LISTEN="127.0.0.1:$ADMIN" ENVOI__LOG__FORMAT=json)
start_in_image "$WORK/serve.out" "$WORK/serve.err" "$PORT" "${settings[@]}" -- "${ENTRYPOINT[@]}" "${CMD[@]}"
SERVE_PID=$STARTED_PID
wait_for "http://127.0.0.1:$ADMIN/readyz" 15 || { cat "$WORK/serve.err" >&2; fail "serve did not become ready"; }
echo "    GET /readyz (admin): $(curl -fsS "http://127.0.0.1:$ADMIN/readyz")"
token=$(in_image "$PORT" "${settings[@]}" -- envoi token --project billing --type service --id api --ttl 5m | tail -n 1)
answer=$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/")
[[ $answer == *'"key":"DB_PASSWORD"'* ]] || fail "GET / did not answer billing/service/api's secrets"
echo "    GET / (main, 0.0.0.0:$PORT) with a token from \`envoi token\`: 200"
metrics=$(curl -fsS "http://127.0.0.1:$ADMIN/metrics")
grep -q '^envoi_policy_ready 1$' <<<"$metrics" || fail "/metrics on the admin listener does not say the policy is ready"
echo "    GET /metrics (admin): $(grep -c '^envoi_' <<<"$metrics") samples, envoi_policy_ready 1"
ok "\`envoi serve\` as the image runs it: policy.toml in WORKDIR, key file, JSON logs, GET / 200, /readyz and /metrics on the admin port"
healthcheck "$PORT" "${settings[@]}" || fail "the HEALTHCHECK command failed against serve"
ok "the HEALTHCHECK command exits 0 against serve, via ENVOI__SERVER__ADMIN_LISTEN's port"
stop "$SERVE_PID"
ok "serve exits 0 on SIGTERM (graceful shutdown)"
grep -q '"message":"listening"' "$WORK/serve.err" || fail "no JSON log line on standard error"
ok "log.format = json (ENVOI__LOG__FORMAT) writes JSON lines to standard error"
if healthcheck "$PORT" "${settings[@]}" 2>/dev/null; then
  fail "the HEALTHCHECK command succeeded with no server running: it cannot fail"
fi
ok "the HEALTHCHECK command fails once the server is gone"

# ---------------------------------------------------------------------------------------
step "summary ($((SECONDS - STARTED)) s)"
echo "Proven here, without Docker:"
for line in "${PROVEN[@]}"; do printf '  + %s\n' "$line"; done
cat <<EOF
Not proven here (scripts/docker-build.sh proves most of it with a real Docker engine):
  - the base images: that $BUILDER_IMAGE and $FINAL_IMAGE exist, can be pulled, and
    are what this host stands in for (Debian bookworm, glibc 2.36, Rust $(rustc --version | cut -d' ' -f2) here);
  - the builder's network: cargo fetching the crates from crates.io inside the builder
    (here they came from the local cache$([[ $OFFLINE == 1 ]] && echo ', cargo offline'));
  - the final stage's RUN (groupadd/useradd) inside the slim image, and the layers'
    ownership and modes as Docker writes them;
  - Docker's own COPY and .dockerignore handling (approximated here), BuildKit's layer
    cache, and the HEALTHCHECK as Docker schedules it;
  - the image's size: the stripped binary is $(du -h "$BIN" | cut -f1); debian:bookworm-slim adds about
    75 MB uncompressed (about 28 MB compressed), so expect roughly $(( $(du -m "$BIN" | cut -f1) + 75 )) MB, unmeasured.
EOF
echo "all steps passed"
