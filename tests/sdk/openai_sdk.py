"""The official OpenAI Python SDK against a running Rampart gateway.

Usage: python openai_sdk.py BASE_URL API_KEY
Checks what an application team relies on when it only changes `base_url`: chat (plain,
streamed, tools), completions, embeddings, model listing, and that Rampart's refusals surface
as the SDK's typed errors with Rampart's codes.
"""
import sys

import openai
from openai import OpenAI

base_url, key = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    checks += 1


r = client.chat.completions.create(model="rampart-demo", messages=[{"role": "user", "content": "Hello SDK"}])
check("Hello SDK" in r.choices[0].message.content, "chat reply")
check(r.usage.completion_tokens > 0, "usage")

text = ""
for chunk in client.chat.completions.create(model="rampart-demo", stream=True,
                                            messages=[{"role": "user", "content": "stream me"}]):
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
check("stream me" in text, "streamed chat")

tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
r = client.chat.completions.create(model="rampart-demo", tools=tools,
                                   messages=[{"role": "user", "content": "use the tool"}])
call = r.choices[0].message.tool_calls[0]
check(call.function.name == "lookup" and '"q"' in call.function.arguments, "tool call")

r = client.completions.create(model="rampart-demo", prompt="once upon a time")
check("once upon a time" in r.choices[0].text, "completion")

# The SDK asks for base64 by default and decodes it into floats.
r = client.embeddings.create(model="rampart-demo", input=["a", "b"])
check(len(r.data) == 2 and len(r.data[0].embedding) == 64, "embeddings (SDK default)")
r = client.embeddings.create(model="rampart-demo", input="a", encoding_format="float")
check(len(r.data[0].embedding) == 64, "embeddings (float)")

check([m.id for m in client.models.list()] == ["rampart-demo"], "models list")

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    check(False, "unknown model refused")
except openai.NotFoundError as e:
    check(e.code == "model_not_found", "model_not_found code")

try:
    OpenAI(base_url=base_url, api_key="rk-wrong", max_retries=0).models.list()
    check(False, "bad key refused")
except openai.AuthenticationError as e:
    check(e.code == "invalid_api_key", "invalid_api_key code")

print(f"openai SDK {openai.__version__}: {checks} passed, 0 failed")
