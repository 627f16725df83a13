#!/usr/bin/env python3
"""Random SigV4 cases signed by botocore, the reference signer, for SigV4Tests.swift.

Prints a JSON list. Each case gives the raw inputs (method, raw path, raw query pairs,
headers, payload hash, time, credentials, region, service) and botocore's results: the
encoded path it puts in the URL, its canonical request and its Authorization header.
Exits 77 when botocore is not installed (the Swift test then skips).

  sigv4_botocore.py [--count N] [--seed S]
"""
import argparse
import datetime
import json
import random
import sys
from unittest import mock

try:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import botocore.utils
except ImportError:
    sys.exit(77)

# Characters that matter to encoding: reserved, unreserved, %, +, spaces, and multi-byte UTF-8.
PATH_CHARS = list("abcXYZ019-_.~ +:%=&?#@!$'()*,;[]|^`{}\"<>\\") + ["é", "ü", "ß", "€", "ሴ", "日本", "😀", "\u00a0"]
HEADER_CHARS = list("abcdefXYZ0189-_.~ +:%=&/;,\"'()") + ["  ", "   ", "\t"]


def rand_text(rng, chars, lo, hi):
    return "".join(rng.choice(chars) for _ in range(rng.randint(lo, hi)))


def make_case(rng):
    method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    bucket = rand_text(rng, list("abcdefghijklmnopqrstuvwxyz0123456789-"), 3, 12)
    segments = [rand_text(rng, PATH_CHARS, 1, 12) for _ in range(rng.randint(0, 4))]
    raw_path = "/" + bucket + ("/" + "/".join(segments) if segments else "")
    if rng.random() < 0.1:
        raw_path += "/"
    query = []
    for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
        name = rng.choice(["prefix", "list-type", "continuation-token", "delete", "max-keys", "encoding-type",
                           "start-after", "uploads", "versionId", rand_text(rng, PATH_CHARS, 1, 8)])
        value = "" if rng.random() < 0.2 else rand_text(rng, PATH_CHARS, 1, 16)
        query.append([name, value])
    host = bucket + "." + rng.choice(["s3.amazonaws.com", "s3.eu-west-1.amazonaws.com", "127.0.0.1:8080", "storage.googleapis.com"])
    # No Date header: botocore then rewrites it and drops X-Amz-Date, a client choice
    # rather than part of SigV4 (SigV4Tests' AWS PUT example covers a signed Date).
    headers = [["Host", host]]
    for _ in range(rng.randint(0, 4)):
        name = rng.choice(["Content-MD5", "Content-Type", "Range", "x-amz-storage-class", "x-amz-meta-" + rand_text(rng, list("abcxyz019-"), 1, 6),
                           "If-None-Match", "X-Amz-Meta-Mixed"])
        value = rand_text(rng, HEADER_CHARS, 1, 20)
        if not value.strip():
            value += "v"
        headers.append([name, value])
    payload = rng.choice(["UNSIGNED-PAYLOAD", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                          "".join(rng.choice("0123456789abcdef") for _ in range(64))])
    t = rng.randint(1_300_000_000, 2_100_000_000)
    key_id = "AKIA" + rand_text(rng, list("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 16, 16)
    secret = rand_text(rng, list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"), 40, 40)
    token = rand_text(rng, list("abcdefXYZ0123456789+/="), 20, 120) if rng.random() < 0.3 else None
    region = rng.choice(["us-east-1", "eu-west-1", "ap-southeast-2", "auto", "us-central1", "default"])
    return {"method": method, "path": raw_path, "query": query, "headers": headers, "payload_hash": payload,
            "time": t, "access_key": key_id, "secret_key": secret, "session_token": token, "region": region,
            "service": "s3"}


def sign(case):
    path = botocore.utils.percent_encode(case["path"], safe="/~")
    req = botocore.awsrequest.AWSRequest(method=case["method"], url="https://" + case["headers"][0][1] + path,
                                         params=[tuple(q) for q in case["query"]], data=b"")
    for name, value in case["headers"]:
        req.headers[name] = value
    req.headers["X-Amz-Content-SHA256"] = case["payload_hash"]
    creds = botocore.credentials.Credentials(case["access_key"], case["secret_key"], case["session_token"])
    auth = botocore.auth.S3SigV4Auth(creds, "s3", case["region"])
    # S3SigV4Auth sets X-Amz-Content-SHA256 from the body; keep the case's hash instead.
    auth.payload = lambda request: case["payload_hash"]
    now = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc).replace(tzinfo=None)
    seen = []
    original = auth.canonical_request

    def canonical_request(request):
        seen.append(original(request))
        return seen[-1]

    auth.canonical_request = canonical_request
    with mock.patch("botocore.auth.get_current_datetime", return_value=now):
        auth.add_auth(req)
    return {"encoded_path": path, "canonical_request": seen[0], "authorization": req.headers["Authorization"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rng = random.Random(args.seed)
    cases = []
    for _ in range(args.count):
        case = make_case(rng)
        case["expected"] = sign(case)
        cases.append(case)
    json.dump(cases, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
