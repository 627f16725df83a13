#!/usr/bin/env bash
# End-to-end check of the server scripts: for each server, start, make real
# requests, stop, start again (the restart path), request again, stop.
# Prints one timing line per start.
#
#   smoke.sh [swift] [radosgw] [carbon]     (default: all three)
#
# Needs python3 with botocore for the S3 checks (a reference SigV4 signer).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap '"$HERE/swift-aio.sh" stop "$WORK/swift" >/dev/null 2>&1 || true
      "$HERE/radosgw.sh" stop "$WORK/rgw" >/dev/null 2>&1 || true
      "$HERE/carbon.sh" stop "$WORK/carbon" >/dev/null 2>&1 || true
      rm -rf "$WORK"' EXIT

timed_start() {
    local label="$1" t0 t1; shift
    t0=$EPOCHREALTIME
    "$@"
    t1=$EPOCHREALTIME
    awk -v l="$label" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s: start took %.1f s\n", l, b - a }'
}

# PUT, GET and LIST through botocore, path-style.
s3_check() {
    python3 - "$@" <<'PY'
import os, sys
import botocore.session
from botocore.config import Config
ep, ak, sk, region = sys.argv[1:5]
c = botocore.session.get_session().create_client(
    "s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
    region_name=region, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
b = "smoke-%d" % os.getpid()
c.create_bucket(Bucket=b)
body = os.urandom(300000)
c.put_object(Bucket=b, Key="a/b.wsp", Body=body)
assert c.get_object(Bucket=b, Key="a/b.wsp")["Body"].read() == body, "GET returned other bytes"
keys = [o["Key"] for o in c.list_objects_v2(Bucket=b, Prefix="a/")["Contents"]]
assert keys == ["a/b.wsp"], keys
c.delete_object(Bucket=b, Key="a/b.wsp")
c.delete_bucket(Bucket=b)
PY
}

# Swift v1 auth, then container PUT, object PUT/GET with curl. Container
# names need 3+ characters for radosgw.
swift_check() {
    local auth="$1" user="$2" key="$3" hdrs tok url
    hdrs="$(curl -fsS -D - -o /dev/null -H "X-Auth-User: $user" -H "X-Auth-Key: $key" "$auth")"
    tok="$(printf '%s' "$hdrs" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')"
    url="$(printf '%s' "$hdrs" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-storage-url"{print $2}')"
    curl -fsS -o /dev/null -X PUT -H "X-Auth-Token: $tok" "$url/smoke"
    printf 'hello' | curl -fsS -o /dev/null -X PUT -H "X-Auth-Token: $tok" --data-binary @- "$url/smoke/o"
    [ "$(curl -fsS -H "X-Auth-Token: $tok" "$url/smoke/o")" = hello ] || { echo "swift GET mismatch" >&2; return 1; }
    curl -fsS -o /dev/null -X DELETE -H "X-Auth-Token: $tok" "$url/smoke/o"
}

check_swift() {
    eval "$("$HERE/swift-aio.sh" env "$WORK/swift")"
    swift_check "$ST_AUTH" "$ST_USER" "$ST_KEY"
    s3_check "$WSP_TEST_S3_ENDPOINT" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_REGION"
}

check_rgw() {
    eval "$("$HERE/radosgw.sh" env "$WORK/rgw")"
    swift_check "$WSP_TEST_RGW_ST_AUTH" "$WSP_TEST_RGW_ST_USER" "$WSP_TEST_RGW_ST_KEY"
    s3_check "$WSP_TEST_RGW_ENDPOINT" "$WSP_TEST_RGW_ACCESS_KEY_ID" \
        "$WSP_TEST_RGW_SECRET_ACCESS_KEY" "$WSP_TEST_RGW_REGION"
}

check_carbon() {
    eval "$("$HERE/carbon.sh" env "$WORK/carbon")"
    local f="$WSP_TEST_CARBON_WHISPER_DIR/test/metric.wsp"
    rm -f "$f"
    printf 'test.metric 1 %s\n' "$(date +%s)" >"/dev/tcp/${WSP_TEST_CARBON%:*}/${WSP_TEST_CARBON#*:}"
    for _ in $(seq 1 100); do [ -s "$f" ] && return 0; sleep 0.1; done
    echo "carbon did not create $f" >&2
    return 1
}

run() {
    local name="$1" script="$2" dir="$3" check="$4"
    timed_start "$name (first)" "$HERE/$script" start "$WORK/$dir"
    "$check"
    "$HERE/$script" stop "$WORK/$dir"
    "$HERE/$script" stop "$WORK/$dir"   # stopping twice is fine
    timed_start "$name (restart)" "$HERE/$script" start "$WORK/$dir"
    "$check"
    "$HERE/$script" stop "$WORK/$dir"
    echo "$name: ok"
}

[ $# -gt 0 ] || set -- swift radosgw carbon
for s in "$@"; do
    case "$s" in
        swift) run swift swift-aio.sh swift check_swift ;;
        radosgw) run radosgw radosgw.sh rgw check_rgw ;;
        carbon) run carbon carbon.sh carbon check_carbon ;;
        *) echo "unknown server: $s" >&2; exit 2 ;;
    esac
done
