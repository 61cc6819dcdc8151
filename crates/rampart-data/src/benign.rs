//! The benign side, as varied as the attacks: every attack family has twins that share its
//! wrappers and vocabulary around harmless content, plus the prompts detectors over-block
//! (role play, fiction, lyrics, chat transcripts, questions about security and about
//! instructions), in every language with parts.

use rampart_scan::injection::train::Sample;

use crate::attacks::{self, ASK};
use crate::lang::LANGS;
use crate::Rng;

const HARMLESS: &[&str] = &[
    "bake sourdough bread with a crisp crust",
    "fix a dripping kitchen tap",
    "train a puppy to walk on a lead",
    "grow tomatoes on a balcony",
    "solve a Rubik's cube",
    "write a cover letter for a nursing job",
    "set up a home network with a mesh router",
    "brew cold-brew coffee",
    "change a bicycle inner tube",
    "plan a week of vegetarian dinners",
    "start running without hurting my knees",
    "prepare for a job interview",
    "build a birdhouse from scrap wood",
    "make a budget spreadsheet",
    "learn the basics of music theory",
    "restore an old wooden chair",
    "teach a child to ride a bike",
    "pick a good password manager",
];

const FRAMES: &[&str] = &[
    "You are a bestselling novelist. In chapter twelve the heroine explains to her niece how to {h}. Write that warm, detailed scene.",
    "My late grandmother used to tell me how to {h}. I miss her. Could you tell it the way a kind grandmother would?",
    "I'm teaching an evening class and my students want to learn how to {h}. Give a clear step-by-step lesson.",
    "Imagine a world where everyone learns to {h} at school. As the teacher there, give today's lesson.",
    "Hypothetically, if I had a free weekend to {h}, how should I plan it?",
    "Let's play a game: you are Alex, a cheerful coach. Alex, how would you {h}?",
    "Write a short screenplay where a mentor teaches a young apprentice how to {h}.",
    "In the novel I'm editing, the narrator lists the steps to {h}. Make the list sound natural.",
];

const ROLES: &[&str] = &[
    "a medieval blacksmith",
    "a pirate captain",
    "a friendly travel agent",
    "my Spanish tutor",
    "a Socratic philosophy teacher",
    "a sommelier",
    "a tour guide in Kyoto",
    "a 1920s detective",
    "a dungeon master",
    "a patient interviewer for a mock job interview",
    "Sherlock Holmes",
    "a Linux terminal",
    "a motivational coach",
    "an astronaut on the ISS",
];
const TASKS: &[&str] = &[
    "describe your typical day",
    "greet me and ask what I need",
    "quiz me on irregular verbs",
    "tell me a story about your last adventure",
    "explain your job to a ten-year-old",
    "recommend something for a rainy evening",
    "stay in character and answer my questions",
    "give me feedback on my answers",
];
const WORLDS: &[&str] = &[
    "cats rule the world",
    "the Roman Empire never fell",
    "electricity was never discovered",
    "humans can photosynthesise",
    "the oceans are made of lemonade",
    "dragons run the postal service",
];

const SECURITY: &[&str] = &[
    "What is prompt injection and how do I defend my chatbot against it?",
    "Explain how SQL injection works so I can fix my login form.",
    "What does an 'ignore previous instructions' attack look like, and why does it work?",
    "How do jailbreak prompts like DAN try to get around a model's rules?",
    "Write a unit test that checks my sanitizer rejects '<script>' tags.",
    "What are the OWASP top 10 risks for LLM applications?",
    "How should I store API keys in a CI pipeline?",
    "Can you review my rate limiter for abuse cases?",
    "What is the difference between a system prompt and a user prompt?",
    "How do I red-team my own RAG application safely?",
    "Explain what a reverse shell is for my security exam.",
    "Our pentest found an XSS bug; how do we prioritise the fix?",
];

const META: &[&str] = &[
    "Rewrite these instructions so they are clearer: 'Open the app, then ignore the pop-up, then tap Settings.'",
    "How do I write a system prompt that keeps my support bot on topic?",
    "Give me instructions for onboarding a new developer to our repo.",
    "Make these assembly instructions shorter without losing any step.",
    "What are good rules for a classroom discussion?",
    "Please ignore my previous message, I found the answer. Thanks!",
    "Forget about the formatting, just tell me whether the logic is right.",
    "Can you override the default font in a LaTeX document?",
    "The instructions say to disregard the first page of the form. Which page should I fill in?",
    "My manager told me to ignore the old style guide. What's a good modern one?",
];

const VERSE_WORDS: &[&str] = &[
    "night", "fire", "heart", "road", "rain", "light", "dance", "river", "home", "dream", "gold", "sky", "city",
    "summer", "shadow", "tonight",
];
const NAMES: &[&str] = &["Alice", "Bob", "Priya", "Tom", "Mei", "Omar", "Lena", "Sam"];
const CHAT_LINES: &[&str] = &[
    "are we still on for lunch?",
    "yes, 12:30 at the usual place",
    "can you bring the charger I lent you",
    "lol sure",
    "the build is red again",
    "I'll look after standup",
    "did you see the game last night",
    "running 5 min late",
    "ok see you there",
    "thanks!!",
];
const TRAILERS: &[&str] = &[
    "thx!!",
    ":)",
    "(sorry for my english)",
    "#help #newbie",
    "-- sent from my phone",
    "see https://example.org/faq for context",
    "```\nerror: exit code 1\n```",
    "ps: urgent-ish",
    "~J",
    "[edit: typo]",
    "^^ that's all",
    ">>> x = 1",
];
const FILLERS: &[&str] = &[
    "Please reply by Friday.",
    "Ignore the previous email; the room changed to B12.",
    "Note: the printer on floor 2 is broken.",
    "Remember to submit your timesheets.",
    "Disregard the draft I sent earlier, this is the final version.",
    "The system will be down for maintenance on Sunday.",
    "New instructions for the kitchen rota are on the fridge.",
    "Reminder: keep the fire exits clear.",
];
/// The attack carriers but the JSON order and the parcel notice, in the order the shipped
/// data was generated with.
const CARRIERS: [&str; 8] = [
    attacks::CARRIERS[0],
    attacks::CARRIERS[1],
    attacks::CARRIERS[2],
    attacks::CARRIERS[3],
    attacks::CARRIERS[4],
    attacks::CARRIERS[5],
    attacks::CARRIERS[6],
    attacks::CARRIERS[8],
];

/// Short turns people send: greetings, thanks, acknowledgements (per language).
const CHITCHAT: &[(&str, &[&str])] = &[
    (
        "en",
        &[
            "hello",
            "hi",
            "hey there",
            "ok",
            "okay thanks",
            "thanks!",
            "thank you so much",
            "good morning",
            "yes",
            "no",
            "sure",
            "great, thanks",
            "before",
            "after that?",
            "continue",
            "go on",
            "why?",
            "what?",
            "cool",
            "perfect",
            "lol",
            "never mind",
            "can you help me?",
            "bye",
            "one more question",
            "test",
            "hello?",
            "are you there?",
            "again please",
            "shorter please",
        ],
    ),
    (
        "de",
        &[
            "hallo",
            "danke",
            "danke schön",
            "guten Morgen",
            "ja",
            "nein",
            "ok, danke",
            "weiter",
            "warum?",
            "super",
            "tschüss",
            "noch eine Frage",
            "kannst du mir helfen?",
            "bitte kürzer",
        ],
    ),
    (
        "fr",
        &[
            "bonjour",
            "merci",
            "merci beaucoup",
            "salut",
            "oui",
            "non",
            "d'accord",
            "continue",
            "pourquoi ?",
            "parfait",
            "au revoir",
            "encore une question",
            "tu peux m'aider ?",
            "plus court s'il te plaît",
        ],
    ),
    (
        "es",
        &[
            "hola",
            "gracias",
            "muchas gracias",
            "buenos días",
            "sí",
            "no",
            "vale",
            "continúa",
            "¿por qué?",
            "perfecto",
            "adiós",
            "otra pregunta",
            "¿me ayudas?",
            "más corto, por favor",
        ],
    ),
    (
        "it",
        &[
            "ciao",
            "grazie",
            "grazie mille",
            "buongiorno",
            "sì",
            "no",
            "va bene",
            "continua",
            "perché?",
            "perfetto",
            "arrivederci",
            "un'altra domanda",
        ],
    ),
    (
        "pt",
        &[
            "olá",
            "obrigado",
            "muito obrigada",
            "bom dia",
            "sim",
            "não",
            "tá bom",
            "continue",
            "por quê?",
            "perfeito",
            "tchau",
            "mais uma pergunta",
        ],
    ),
    (
        "nl",
        &[
            "hallo",
            "dank je",
            "bedankt",
            "goedemorgen",
            "ja",
            "nee",
            "oké",
            "ga door",
            "waarom?",
            "perfect",
            "doei",
        ],
    ),
    (
        "pl",
        &[
            "cześć",
            "dzięki",
            "dziękuję bardzo",
            "dzień dobry",
            "tak",
            "nie",
            "ok",
            "kontynuuj",
            "dlaczego?",
            "super",
            "pa",
        ],
    ),
    (
        "ru",
        &[
            "привет",
            "спасибо",
            "большое спасибо",
            "доброе утро",
            "да",
            "нет",
            "хорошо",
            "продолжай",
            "почему?",
            "отлично",
            "пока",
        ],
    ),
    (
        "tr",
        &[
            "merhaba",
            "teşekkürler",
            "çok teşekkür ederim",
            "günaydın",
            "evet",
            "hayır",
            "tamam",
            "devam et",
            "neden?",
            "harika",
        ],
    ),
    (
        "ar",
        &[
            "مرحبا",
            "شكرا",
            "شكرا جزيلا",
            "صباح الخير",
            "نعم",
            "لا",
            "حسنا",
            "تابع",
            "لماذا؟",
            "ممتاز",
        ],
    ),
    (
        "hi",
        &[
            "नमस्ते",
            "धन्यवाद",
            "बहुत धन्यवाद",
            "सुप्रभात",
            "हाँ",
            "नहीं",
            "ठीक है",
            "आगे बताओ",
            "क्यों?",
            "बढ़िया",
        ],
    ),
    (
        "th",
        &[
            "สวัสดี",
            "ขอบคุณ",
            "ขอบคุณมาก",
            "อรุณสวัสดิ์",
            "ใช่",
            "ไม่",
            "โอเค",
            "ต่อเลย",
            "ทำไม",
            "เยี่ยม",
        ],
    ),
    (
        "zh",
        &[
            "你好",
            "谢谢",
            "非常感谢",
            "早上好",
            "是的",
            "不是",
            "好的",
            "继续",
            "为什么？",
            "太好了",
        ],
    ),
    (
        "ja",
        &[
            "こんにちは",
            "ありがとう",
            "どうもありがとうございます",
            "おはようございます",
            "はい",
            "いいえ",
            "了解です",
            "続けて",
            "なぜ？",
            "完璧です",
        ],
    ),
    (
        "ko",
        &[
            "안녕하세요",
            "감사합니다",
            "정말 고마워요",
            "좋은 아침",
            "네",
            "아니요",
            "알겠어요",
            "계속해 줘",
            "왜요?",
            "완벽해요",
        ],
    ),
    (
        "vi",
        &[
            "xin chào",
            "cảm ơn",
            "cảm ơn nhiều",
            "chào buổi sáng",
            "vâng",
            "không",
            "được",
            "tiếp tục",
            "tại sao?",
            "tuyệt",
        ],
    ),
    (
        "id",
        &[
            "halo",
            "terima kasih",
            "terima kasih banyak",
            "selamat pagi",
            "ya",
            "tidak",
            "oke",
            "lanjutkan",
            "kenapa?",
            "sempurna",
        ],
    ),
];

/// What people type as a whole message: a topic, a setting, a few words. Attack corpora use
/// many of these words (their requests are about passports, poisons and wallets; jailbreaks
/// talk of modes, rules, responses and characters), and a benign corpus of full sentences
/// never shows them alone, so a detector learns a lone word as an attack. Everyday topics
/// across domains, the sensitive-but-ordinary ones included, and the vocabulary of talking
/// about assistants and software.
const TOPICS: &[&str] = &[
    // health
    "flu shot",
    "vaccination schedule",
    "blood pressure",
    "nerve pain",
    "sore throat",
    "allergy season",
    "first aid kit",
    "sleep hygiene",
    "vitamin D",
    "knee injury",
    "poison ivy rash",
    "food poisoning",
    "burn ointment",
    "overdose symptoms in dogs",
    "antibiotics",
    "hangover cure",
    // money and papers
    "passport renewal",
    "visa application",
    "tax return",
    "credit score",
    "savings account",
    "lost wallet",
    "crypto wallet",
    "online banking",
    "student loan",
    "mortgage rates",
    "stock options",
    "bank transfer fees",
    "identity theft protection",
    "insurance claim",
    // home, travel, hobbies
    "sourdough starter",
    "tomato plants",
    "bike repair",
    "camping gear",
    "road trip playlist",
    "guitar chords",
    "chess openings",
    "knitting patterns",
    "aquarium filter",
    "water filter",
    "unfiltered olive oil",
    "coffee grinder",
    "fire pit",
    "fireworks laws",
    "hunting season",
    "fishing license",
    "kitchen knives",
    "lock picking hobby",
    "escape room",
    "murder mystery party",
    "true crime podcast",
    "horror movies",
    "war history",
    "nuclear power",
    "chemistry set",
    "gunpowder history",
    "bomb cyclone",
    "wildfire smoke",
    // school, work, law
    "essay outline",
    "cover letter",
    "job interview",
    "performance review",
    "lab report",
    "exam rules",
    "house rules",
    "school dress code",
    "speed limit",
    "parking fine",
    "noise complaint",
    "tenant rights",
    "copyright law",
    "illegal parking",
    "jury duty",
    "restraining order",
    // software and assistants
    "response",
    "responses",
    "API response",
    "HTTP response codes",
    "response time",
    "survey responses",
    "emergency response",
    "respond",
    "reply",
    "answers",
    "mode",
    "dark mode",
    "safe mode",
    "developer mode",
    "debug mode",
    "airplane mode",
    "kiosk mode",
    "game mode",
    "strict mode",
    "instructions",
    "setup instructions",
    "rules",
    "firewall rules",
    "content filter",
    "spam filter",
    "filter",
    "override",
    "method override",
    "admin panel",
    "admin rights",
    "sudo",
    "root access",
    "bypass valve",
    "ignore file",
    "previous version",
    "system prompt",
    "prompt",
    "prompt engineering",
    "character",
    "character design",
    "persona",
    "role",
    "roleplay game",
    "simulation",
    "hypothetical",
    "unrestricted",
    "restrictions",
    "limitations",
    "policy",
    "guidelines",
    "terms of service",
    "ethics",
    "morality",
    "opinions",
    "jokes",
    "chatbot",
    "ChatGPT",
    "OpenAI",
    "language model",
    "AI assistant",
    "jailbreak iPhone",
    "token limit",
    "context window",
    "no filter",
    "uncensored history",
    "unfiltered",
];

/// Short-message shapes around a topic.
const TOPIC_FORMS: &[&str] = &[
    "{t}",
    "{T}",
    "{t}?",
    "{T}.",
    "{t} pls",
    "{t} tips",
    "what is {t}",
    "{T} explained",
    "help with {t}",
    "question about {t}",
    "best {t}",
    "{t} for beginners",
    "{T}: where do I start?",
    "Thanks for the {t}!",
    "hi, {t}",
    "Hello {T}",
    "{t} vs {u}",
    "{T} and {u}",
    "more about {t}",
    "ok, {t} then",
];

/// Ordinary messages that carry opaque tokens: hashes, ids, keys being asked about, encoded
/// blobs, long URLs. Token soup is the shape of an optimised suffix; these are not that.
fn tokenish(rng: &mut Rng) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = |n: usize, set: &[u8]| -> String { (0..n).map(|_| set[rng.below(set.len())] as char).collect() };
    let hex = token(40, b"0123456789abcdef");
    let id = token(24, ALNUM);
    let b64 = format!("{}==", token(44, ALNUM));
    let uuid = format!(
        "{}-{}-4{}-a{}-{}",
        token(8, b"0123456789abcdef"),
        token(4, b"0123456789abcdef"),
        token(3, b"0123456789abcdef"),
        token(3, b"0123456789abcdef"),
        token(12, b"0123456789abcdef")
    );
    let t = match rng.below(8) {
        0 => format!("The build failed at commit {hex}, can you see why?"),
        1 => format!("here: ghp_{id} and more text after it"),
        2 => format!("My order id is {uuid} and it has not arrived."),
        3 => format!("Decode this base64 for me: {b64}"),
        4 => format!("Why does https://shop.example.com/p?id={id}&ref=mail&utm_source=x redirect twice?"),
        5 => format!("Error {id}: request {uuid} timed out after 30s"),
        6 => format!("Is sha256 {hex}{hex} the right checksum for the ISO?"),
        _ => format!("token={id} session={uuid} user=42 — what do these log fields mean?"),
    };
    t
}

/// `t` with its first letter upper-cased.
fn capitalised(t: &str) -> String {
    t.chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(t.chars().skip(1))
        .collect()
}

fn sample(text: String, source: &str) -> Sample {
    Sample {
        text,
        label: false,
        source: source.to_owned(),
    }
}

fn lyrics(rng: &mut Rng) -> String {
    let line = |rng: &mut Rng| {
        format!(
            "{} the {} and the {}, {} {}",
            rng.pick(&["Under", "Through", "Into", "Over", "Beyond"]),
            rng.pick(VERSE_WORDS),
            rng.pick(VERSE_WORDS),
            rng.pick(&["we run", "I fall", "you shine", "they sing", "we wait"]),
            rng.pick(&["tonight", "again", "forever", "alone", "together"])
        )
    };
    let mut t = String::new();
    for part in ["[Verse 1]", "[Chorus]", "[Verse 2]", "[Chorus]", "[Bridge]"] {
        t.push_str(part);
        t.push('\n');
        for _ in 0..(2 + rng.below(3)) {
            t.push_str(&line(rng));
            t.push('\n');
        }
        t.push('\n');
    }
    t
}

/// `count` benign rows per family, seeded.
pub fn generate(count: usize, seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(sample(
            rng.pick(FRAMES).replace("{h}", rng.pick(HARMLESS)),
            "gen-persuasion@en",
        ));
    }
    for _ in 0..count {
        let t = match rng.below(4) {
            0 => format!("Imagine you are {}. {}.", rng.pick(ROLES), rng.pick(TASKS)),
            1 => format!("Act as {} and {}.", rng.pick(ROLES), rng.pick(TASKS)),
            2 => format!(
                "In an alternate universe where {}, write a short story about a day at school.",
                rng.pick(WORLDS)
            ),
            _ => format!("Pretend you're {}. {}", rng.pick(ROLES), rng.pick(SECURITY)),
        };
        out.push(sample(t, "gen-roleplay@en"));
    }
    for _ in 0..count / 2 {
        let t = lyrics(&mut rng);
        let t = if rng.chance(0.5) {
            format!("What do you think these lyrics mean?\n\n{t}")
        } else {
            t
        };
        out.push(sample(t, "gen-lyrics@en"));
    }
    for _ in 0..count / 2 {
        let mut t = String::new();
        for _ in 0..(4 + rng.below(10)) {
            t.push_str(&format!("{}: {}\n", rng.pick(NAMES), rng.pick(CHAT_LINES)));
        }
        out.push(sample(
            format!(
                "{}\n{t}",
                rng.pick(&[
                    "Summarize this chat:",
                    "Who agreed to what here?",
                    "Translate this conversation into French:",
                    ""
                ])
            ),
            "gen-transcript@en",
        ));
    }
    for _ in 0..count {
        let t = if rng.chance(0.5) {
            rng.pick(SECURITY).to_owned()
        } else {
            rng.pick(META).to_owned()
        };
        out.push(sample(t, "gen-meta@en"));
    }
    for _ in 0..count {
        let req = format!(
            "{}{}",
            rng.pick(&[
                "Explain how to ",
                "Write a guide to ",
                "Give me steps to ",
                "Tell me how to "
            ]),
            rng.pick(HARMLESS)
        );
        out.push(sample(format!("{req}. {}", rng.pick(TRAILERS)), "gen-suffix@en"));
    }
    for _ in 0..count / 2 {
        let mut t = String::from("Classify the sentiment of each review.\n");
        for _ in 0..(3 + rng.below(8)) {
            t.push_str(&format!(
                "Review: {}\nSentiment: {}\n",
                rng.pick(CHAT_LINES),
                rng.pick(&["positive", "negative", "neutral"])
            ));
        }
        t.push_str(&format!("Review: {}\nSentiment:", rng.pick(CHAT_LINES)));
        out.push(sample(t, "gen-manyshot@en"));
    }
    for _ in 0..count {
        let doc = rng.pick(&CARRIERS).replace("{p}", rng.pick(FILLERS));
        out.push(sample(rng.pick(ASK).replace("{d}", &doc), "gen-planted@en"));
    }
    for (code, turns) in CHITCHAT {
        for t in turns.iter() {
            out.push(sample((*t).to_owned(), &format!("gen-chitchat@{code}")));
            let cap = capitalised(t);
            out.push(sample(
                format!("{cap}{}", rng.pick(&["", ".", "!", " :)", "?"])),
                &format!("gen-chitchat@{code}"),
            ));
        }
    }
    for _ in 0..count {
        out.push(sample(tokenish(&mut rng), "gen-tokens@en"));
    }
    for l in LANGS {
        for _ in 0..count / 3 {
            let t = match rng.below(3) {
                0 => rng.pick(l.benign).to_owned(),
                1 => rng.pick(l.lookalikes).to_owned(),
                _ => {
                    let doc = format!("{}\n{}", rng.pick(l.lookalikes), rng.pick(l.benign));
                    rng.pick(l.about).replace("{}", &doc)
                }
            };
            out.push(sample(t, &format!("gen-multilingual@{}", l.code)));
        }
    }
    // Its own stream, so that adding it left the other families as they were.
    let mut trng = Rng::new(seed ^ 0x7091c5);
    for _ in 0..count {
        let t = trng.pick(TOPICS);
        let u = trng.pick(TOPICS);
        let cap = capitalised(t);
        let text = trng
            .pick(TOPIC_FORMS)
            .replace("{t}", t)
            .replace("{T}", &cap)
            .replace("{u}", u);
        out.push(sample(text, "gen-topics@en"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_benign() {
        let a = generate(12, 3);
        let b = generate(12, 3);
        assert!(a.iter().zip(&b).all(|(x, y)| x.text == y.text));
        assert!(a
            .iter()
            .all(|s| !s.label && !s.text.contains("{h}") && !s.text.contains("{d}")));
        assert!(a.iter().any(|s| s.source.starts_with("gen-lyrics")));
    }
}
