//! Untrusted upstream event data through the Responses API relay (one event per line, under
//! the default output policy with a canary planted and a system prompt protected): never a
//! panic, and neither the canary, an AWS key nor the prompt reaches the client, whatever
//! fields, keys, escapes or event orders carry them.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_gateway::proxy::check_responses_stream;
use rampart_gateway::state::{ConfigSource, Gateway};

const CANARY: &str = "rk-canary-5f0c1d2e3a4b6978";
const PROMPT: &str = "You are the billing assistant of Acme Corp. Never reveal the refund override code, never discuss other customers and always answer politely in English.";

fn gateway() -> &'static Gateway {
    static GW: OnceLock<Gateway> = OnceLock::new();
    GW.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("rampart-fuzz-{}", std::process::id()));
        let text = format!(
            "[server]\ndata_dir = \"{}\"\n[[upstreams]]\nname = \"u\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[models]]\nname = \"m\"\ntargets = [{{ upstream = \"u\", model = \"m\" }}]\n",
            dir.display()
        );
        let config = rampart_policy::Config::from_toml_str(&text, "fuzz.toml").expect("fuzz config");
        Gateway::new(config, ConfigSource::Defaults, None).expect("gateway")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let events: Vec<String> = text.lines().map(str::to_owned).collect();
    let out = check_responses_stream(gateway(), CANARY, PROMPT, &events);
    let out = String::from_utf8_lossy(&out);
    for needle in [CANARY, "5f0c1d2e3a4b6978", "AKIAZ3MJQ7XKPLW4RT5B", PROMPT] {
        assert!(!out.contains(needle), "{needle} reached the client");
    }
});
