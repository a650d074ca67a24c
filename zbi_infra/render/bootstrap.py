"""First bootstrap of a chain volume from a published chain-state archive over HTTPS.

EBS snapshots are the fast path once a snapshot exists (`node.bootstrapSnapshotId`, DR restores). A platform's very
first replica has none, so it may start from an archive such as the zebrad state tarballs zec.rocks publishes. The
init container that runs this script:

- adopts a volume that already holds data and carries no marker of ours (a healthy node, a restored snapshot): it
  is never wiped;
- marks the volume `in-progress` before it writes anything, and `complete` only after the archive is verified and
  fully extracted; a volume marked complete is left alone for ever after;
- downloads to a scratch file on the volume and resumes it (HTTP Range) after a dropped connection or a pod restart,
  starting over only if the server cannot resume;
- verifies the SHA-256 the platform administrator pinned before extracting a single file, and discards a
  mismatching download;
- clears a half-finished extraction (only ever one it started itself) before extracting again.

The volume must hold the archive and its extracted contents at once: the script checks the free space against the
sizes the platform administrator declared before it downloads (and again before it extracts), and a volume that fills
anyway (curl's write error, tar's) stops it with the fix in its last log line (the pod's termination message), never
a retried download. POSIX sh, curl, tar, gzip, sha256sum, df, stat:
all in the zfnd/zebra runtime image (Debian trixie-slim plus curl, see tests/fixtures/upstream/zebra/Dockerfile).
"""

from __future__ import annotations

import shlex

MARKER_DIR = ".zbi-bootstrap"
DEFAULT_ATTEMPTS = 10
GIB = 1024**3
ROOM_FIX = (
    "Fix: raise node.storage.sizeGib (volumes expand online; the next restart resumes), or correct "
    "node.bootstrapArchive.sizeGib / extractedSizeGib"
)


def render_bootstrap_script(
    *,
    url: str,
    sha256: str,
    data_dir: str,
    target_dir: str,
    strip_components: int,
    gzip: bool,
    archive_bytes: int,
    extracted_bytes: int,
    attempts: int = DEFAULT_ATTEMPTS,
    retry_delay_seconds: int = 10,
) -> str:
    q = shlex.quote
    marks = f"{data_dir}/{MARKER_DIR}"
    tar_flags = "-xzf" if gzip else "-xf"
    return f"""set -eu
data={q(data_dir)}
target={q(target_dir)}
marks={q(marks)}
archive="$marks/archive"
free_bytes() {{ echo $(( $(df -Pk "$data" | tail -n 1 | tr -s ' ' | cut -d ' ' -f 4) * 1024 )); }}
no_room() {{
  echo "bootstrap: $1: $(( $(free_bytes) / 1048576 )) MiB free on $data. {ROOM_FIX}" >&2
  exit 1
}}
needs_room() {{
  if [ "$(free_bytes)" -lt "$1" ]; then
    no_room "the volume lacks room for $2 ($(( $1 / 1048576 )) MiB more)"
  fi
}}
if [ -f "$marks/complete" ]; then
  echo "bootstrap: this volume was bootstrapped before; nothing to do"
  exit 0
fi
if [ ! -f "$marks/in-progress" ]; then
  existing=$(find "$data" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name {q(MARKER_DIR)} | head -n 1)
  if [ -n "$existing" ]; then
    echo "bootstrap: $data already holds data ($existing): adopting it, nothing is downloaded or removed"
    mkdir -p "$marks"
    : > "$marks/complete"
    exit 0
  fi
  mkdir -p "$marks"
  : > "$marks/in-progress"
fi
if [ ! -f "$marks/verified" ]; then
  have=$(stat -c %s "$archive" 2>/dev/null || echo 0)
  needs_room $(( {archive_bytes} - have + {extracted_bytes} )) "the rest of the archive and its extracted state"
  attempt=0
  until curl --fail --location --silent --show-error --continue-at - --output "$archive" {q(url)}; do
    status=$?
    if [ "$status" -eq 23 ]; then
      no_room "the volume filled while downloading (curl could not write)"
    fi
    attempt=$((attempt + 1))
    if [ "$status" -eq 33 ]; then
      echo "bootstrap: the server cannot resume; starting the download over"
      rm -f "$archive"
    fi
    if [ "$attempt" -ge {attempts} ]; then
      echo "bootstrap: download failed {attempts} times (curl exit $status); the pod will retry and resume" >&2
      exit 1
    fi
    echo "bootstrap: download interrupted (curl exit $status), resuming (attempt $attempt)"
    sleep {retry_delay_seconds}
  done
  if ! echo {q(sha256)}"  $archive" | sha256sum -c - >/dev/null 2>&1; then
    echo "bootstrap: the archive's SHA-256 is not {sha256}: discarded, nothing extracted" >&2
    rm -f "$archive"
    exit 1
  fi
  : > "$marks/verified"
fi
echo "bootstrap: verified; extracting into $target"
rm -rf "$target"
needs_room {extracted_bytes} "the extracted state"
mkdir -p "$target"
if ! tar {tar_flags} "$archive" -C "$target" --strip-components={strip_components}; then
  if [ "$(free_bytes)" -lt 1048576 ]; then
    no_room "the volume filled while extracting"
  fi
  echo "bootstrap: extraction failed; it is cleared and redone on the next start" >&2
  exit 1
fi
rm -f "$archive" "$marks/verified"
: > "$marks/complete"
rm -f "$marks/in-progress"
echo "bootstrap: complete"
"""
