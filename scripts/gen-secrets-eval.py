#!/usr/bin/env python3
"""Writes eval/secrets.jsonl: a labelled, synthetic secrets evaluation set.

Positives are random credentials in each provider's published format, embedded in the kinds
of text people paste into prompts (config files, shell history, chat). Negatives are the
look-alikes that make secret scanners noisy: hashes, UUIDs, git SHAs, base64 blobs, example
and placeholder keys, environment lookups. Seeded, so the file is reproducible. It is not
training data: no detector is fitted on it.
"""
import base64, json, random, string, uuid, hashlib, sys

R = random.Random(20261122)
A = string.ascii_letters + string.digits
def rnd(n, alphabet=A): return "".join(R.choice(alphabet) for _ in range(n))
def b64url(b): return base64.urlsafe_b64encode(b).decode().rstrip("=")

def jwt():
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps({"sub": rnd(8), "iat": R.randint(1600000000, 1800000000)}).encode())
    return f"{h}.{p}.{b64url(bytes(R.getrandbits(8) for _ in range(32)))}"

POS = {
    "aws_access_key_id": lambda: "AKIA" + rnd(16, string.ascii_uppercase + "234567"),
    "aws_secret": lambda: "aws_secret_access_key = " + rnd(40, A + "/+"),
    "github_token": lambda: "ghp_" + rnd(36),
    "gitlab_token": lambda: "glpat-" + rnd(20, A + "_-"),
    "slack_token": lambda: f"xoxb-{R.randint(10**11, 10**12)}-{R.randint(10**11, 10**12)}-{rnd(24)}",
    "stripe_key": lambda: "sk_live_" + rnd(24),
    "openai_api_key": lambda: "sk-proj-" + rnd(40, A + "_-") + "T3BlbkFJ" + rnd(40, A + "_-"),
    "anthropic_api_key": lambda: "sk-ant-api03-" + rnd(93, A + "_-") + "AA",
    "huggingface_token": lambda: "hf_" + rnd(34, string.ascii_letters),
    "gcp_api_key": lambda: "AIza" + rnd(35, A + "_-"),
    "sendgrid_key": lambda: "SG." + rnd(22, A + "_-") + "." + rnd(43, A + "_-"),
    "npm_token": lambda: "npm_" + rnd(36),
    "private_key": lambda: "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(rnd(64, A + "+/") for _ in range(4)) + "\n-----END RSA PRIVATE KEY-----",
    "jwt": jwt,
    "connection_string": lambda: f"postgres://svc_{rnd(4).lower()}:{rnd(14)}@db-{R.randint(1,9)}.internal:5432/app",
    "generic_secret": lambda: f"DB_PASSWORD=\"{rnd(18, A + '!#%')}\"",
}
NEG = {
    "sha256": lambda: hashlib.sha256(rnd(10).encode()).hexdigest(),
    "git_sha": lambda: f"commit {hashlib.sha1(rnd(10).encode()).hexdigest()}",
    "uuid": lambda: str(uuid.UUID(int=R.getrandbits(128))),
    "base64_blob": lambda: "data:image/png;base64," + base64.b64encode(bytes(R.getrandbits(8) for _ in range(60))).decode(),
    "aws_example": lambda: "AKIAIOSFODNN7EXAMPLE is the documented example key",
    "placeholder": lambda: R.choice(["api_key = \"<your-api-key>\"", "password: changeme", "OPENAI_API_KEY=sk-...", "token = \"xxxxxxxxxxxxxxxx\"", "secret = os.environ['APP_SECRET']"]),
    "env_lookup": lambda: "password = os.getenv(\"DB_PASSWORD\")",
    "prose": lambda: R.choice(["The token expired, so I generated a new one in the dashboard.", "Rotate your secret keys every 90 days and never commit them.", "What is the difference between an access key and a session token?"]),
    "local_dsn": lambda: "postgres://user:password@localhost:5432/test",
    "identifier": lambda: f"api_key_name = settings.{rnd(6).lower()}_api_key",
}
WRAP = [
    "here is my config:\n{x}\nwhy does it fail?",
    "I ran `export TOKEN={x}` and then the deploy broke",
    "{x}",
    "can you check this line: {x}",
    "```\n{x}\n```",
]
rows = []
for kind, f in POS.items():
    for _ in range(25):
        rows.append({"text": R.choice(WRAP).format(x=f()), "label": 1, "source": kind})
for kind, f in NEG.items():
    for _ in range(40):
        rows.append({"text": R.choice(WRAP).format(x=f()), "label": 0, "source": "negative:" + kind})
R.shuffle(rows)
out = sys.argv[1] if len(sys.argv) > 1 else "eval/secrets.jsonl"
with open(out, "w") as fh:
    for r in rows:
        fh.write(json.dumps(r) + "\n")
print(f"wrote {len(rows)} rows to {out}")
