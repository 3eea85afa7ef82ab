//! Seeded generators of evaluation tasks (pure): the task families of the RLM paper and its
//! follow-ups, over freshly generated data of everyday shapes. The same seed always gives the
//! same suite; different seeds give different data, ids, names and question wordings.
//!
//! | family | what it asks | data |
//! |---|---|---|
//! | `needle` | one field of one record found by its id (S-NIAH) | JSON Lines, a log, or CSV |
//! | `count` | rows matching two conditions, counted | CSV or JSON Lines |
//! | `sum` | one column summed over the rows matching two conditions | CSV |
//! | `topk` | the most frequent value, or the three most frequent | a log |
//! | `join` | a name → an id in one file → the last event with that id in another | two files |
//! | `classify` | reviews of one product judged negative, counted (needs sub-LLM calls; OOLONG) | JSON Lines |
//! | `multidoc` | a fact stated in one of many documents | a list of documents |

use super::score::Scoring;
use super::suite::{Expected, Suite, Task, TaskContext};

/// Every family, in the order `all` expands to.
pub const FAMILIES: &[&str] = &[
    "needle", "count", "sum", "topk", "join", "classify", "multidoc",
];

/// Default data sizes (bytes) per family: one task each.
pub const DEFAULT_SIZES: &[usize] = &[10_000, 300_000, 3_000_000];

/// A generated suite and the data files it refers to (paths relative to the suite's
/// directory).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Generated {
    /// The tasks; file contexts are relative paths.
    pub suite: Suite,
    /// (relative path, content) of each data file.
    pub files: Vec<(String, String)>,
}

/// Generates one task per family and size. `families` may hold `all`. `data_dir` is the
/// relative directory the data files go to (e.g. `suite.data`).
pub fn generate(
    families: &[String],
    seed: u64,
    sizes: &[usize],
    data_dir: &str,
) -> Result<Generated, String> {
    let mut fams: Vec<&str> = Vec::new();
    for f in families {
        if f == "all" {
            fams.extend(FAMILIES);
        } else if let Some(known) = FAMILIES.iter().find(|k| *k == f) {
            fams.push(known);
        } else {
            return Err(format!(
                "unknown task family {f:?}: choose among {} or all",
                FAMILIES.join(", ")
            ));
        }
    }
    if fams.is_empty() {
        return Err(format!(
            "name at least one task family ({} or all)",
            FAMILIES.join(", ")
        ));
    }
    if sizes.is_empty() || sizes.iter().any(|&s| !(1_000..=200_000_000).contains(&s)) {
        return Err("sizes must be between 1 KB and 200 MB".into());
    }
    fams.dedup();
    let mut out = Generated {
        suite: Suite { tasks: Vec::new() },
        files: Vec::new(),
    };
    for fam in fams {
        for (k, &size) in sizes.iter().enumerate() {
            // Each task's data depends only on (seed, family, size index).
            let mut rng = Rng::new(seed ^ hash(fam).wrapping_mul(0x9e37_79b9) ^ (k as u64) << 40);
            let id = format!("{fam}-s{seed}-{}", size_label(size));
            let g = match fam {
                "needle" => needle(&mut rng, size),
                "count" => count(&mut rng, size),
                "sum" => sum(&mut rng, size),
                "topk" => topk(&mut rng, size),
                "join" => join(&mut rng, size),
                "classify" => classify(&mut rng, size),
                _ => multidoc(&mut rng, size),
            };
            let context = match g.data {
                Data::Files(files) => {
                    let mut paths = Vec::new();
                    for (name, content) in files {
                        let rel = format!("{data_dir}/{id}/{name}");
                        paths.push(std::path::PathBuf::from(&rel));
                        out.files.push((rel, content));
                    }
                    if paths.len() == 1 {
                        TaskContext::File(paths.remove(0))
                    } else {
                        TaskContext::Files(paths)
                    }
                }
                Data::Documents(d) => TaskContext::Documents(d),
            };
            let mut tags = vec![size_label(size), format!("seed{seed}")];
            tags.extend(g.tags);
            out.suite.tasks.push(Task {
                id,
                family: fam.to_string(),
                tags,
                question: g.question,
                context,
                expected: g.expected,
                scoring: g.scoring,
            });
        }
    }
    Ok(out)
}

/// `10KB`, `3MB`, ...
pub fn size_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}MB", n / 1_000_000)
    } else if n >= 1_000_000 {
        format!("{:.1}MB", n as f64 / 1e6)
    } else {
        format!("{}KB", n.div_ceil(1000))
    }
}

/// Parses `10KB`, `300kb`, `3MB`, `50M`, `12000`.
pub fn parse_size(s: &str) -> Option<usize> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mult) = if let Some(n) = t.strip_suffix("mb").or(t.strip_suffix('m')) {
        (n, 1_000_000.0)
    } else if let Some(n) = t.strip_suffix("kb").or(t.strip_suffix('k')) {
        (n, 1_000.0)
    } else {
        (t.as_str(), 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v > 0.0).then_some((v * mult) as usize)
}

struct Gen {
    question: String,
    expected: Expected,
    scoring: Scoring,
    data: Data,
    tags: Vec<String>,
}

enum Data {
    Files(Vec<(String, String)>),
    Documents(Vec<String>),
}

fn exact(s: impl Into<String>) -> Expected {
    Expected::Text(s.into())
}

fn number(n: f64) -> Expected {
    Expected::Number(n)
}

const EXACT_NUMBER: Scoring = Scoring::Number {
    tolerance: 0.0,
    relative: 0.0,
};

/// SplitMix64: small, fast, and the same on every platform.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.range(0, xs.len() as u64) as usize]
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

const CITIES: &[&str] = &[
    "Lisbon", "Oslo", "Austin", "Nairobi", "Osaka", "Leeds", "Porto", "Denver", "Lyon", "Gdansk",
    "Quito", "Perth", "Tallinn", "Accra", "Bergen", "Cusco", "Dublin", "Hanoi",
];
const COUNTRIES: &[&str] = &[
    "Germany", "France", "Spain", "Italy", "Poland", "Norway", "Japan", "Canada", "Brazil",
    "Kenya", "Chile", "India",
];
const PRODUCTS: &[&str] = &[
    "desk lamp",
    "office chair",
    "standing desk",
    "monitor arm",
    "keyboard tray",
    "cable organizer",
    "laptop stand",
    "footrest",
    "whiteboard",
    "bookshelf",
    "filing cabinet",
    "ergonomic mouse",
    "webcam cover",
    "headset hook",
    "power strip",
];
const FIRST: &[&str] = &[
    "Maria", "Priya", "Jonas", "Aiko", "Tomasz", "Fatima", "Lucas", "Ingrid", "Kofi", "Elena",
    "Mateo", "Sanna", "Ravi", "Chloe", "Yusuf", "Hana", "Oskar", "Amara", "Diego", "Lena",
];
const LAST: &[&str] = &[
    "Keller", "Nair", "Berg", "Tanaka", "Nowak", "Haddad", "Silva", "Lund", "Mensah", "Petrova",
    "Rojas", "Virtanen", "Iyer", "Dubois", "Demir", "Sato", "Holm", "Okafor", "Vega", "Fischer",
];
const COMPANIES: &[&str] = &[
    "Acme Ltd",
    "Borealis GmbH",
    "Cobalt Systems",
    "Driftwood Co",
    "Elmstead Partners",
    "Fjord Logistics",
    "Granite Labs",
    "Harbor Foods",
    "Ion Media",
    "Juniper Health",
    "Kestrel Air",
    "Lumen Retail",
];
const SERVICES: &[&str] = &[
    "auth",
    "billing",
    "search",
    "checkout",
    "inventory",
    "notifications",
    "payments",
    "shipping",
    "catalog",
    "reports",
    "gateway",
    "profile",
];
const MODELS: &[&str] = &["TX-200", "TX-300", "RX-10", "RX-20", "MX-5", "MX-7"];

fn person(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST), rng.pick(LAST))
}

fn date(rng: &mut Rng) -> String {
    format!("2025-{:02}-{:02}", rng.range(1, 13), rng.range(1, 29))
}

fn time(rng: &mut Rng) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        rng.range(0, 24),
        rng.range(0, 60),
        rng.range(0, 60)
    )
}

/// Distinct ids `PREFIX-<digits>` (as many as asked).
fn ids(rng: &mut Rng, prefix: &str, n: usize, digits: u32) -> Vec<String> {
    let span = 10u64.pow(digits);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = rng.range(span / 10, span);
        if seen.insert(v) {
            out.push(format!("{prefix}-{v}"));
        }
    }
    out
}

fn needle(rng: &mut Rng, size: usize) -> Gen {
    match rng.range(0, 3) {
        0 => {
            // Device inventory as JSON Lines.
            let n = (size / 150).max(20);
            let ids = ids(rng, "D", n, 5);
            let target = rng.range(0, n as u64) as usize;
            let mut text = String::with_capacity(size + 200);
            let mut answer = String::new();
            for (i, id) in ids.iter().enumerate() {
                let fw = format!(
                    "{}.{}.{}",
                    rng.range(1, 6),
                    rng.range(0, 20),
                    rng.range(0, 30)
                );
                if i == target {
                    answer = fw.clone();
                }
                text.push_str(&format!(
                    "{{\"device_id\": \"{id}\", \"site\": \"{}\", \"model\": \"{}\", \"firmware\": \"{fw}\", \"status\": \"{}\", \"last_seen\": \"{}T{}Z\"}}\n",
                    rng.pick(CITIES),
                    rng.pick(MODELS),
                    rng.pick(&["ok", "ok", "ok", "degraded", "offline"]),
                    date(rng),
                    time(rng)
                ));
            }
            let id = &ids[target];
            let question = match rng.range(0, 3) {
                0 => format!("Which firmware version is device {id} running?"),
                1 => format!("What firmware does the device with id {id} have installed?"),
                _ => format!("Report the firmware version of device {id}."),
            };
            Gen {
                question,
                expected: exact(answer),
                scoring: Scoring::Exact,
                data: Data::Files(vec![("devices.jsonl".into(), text)]),
                tags: vec!["jsonl".into()],
            }
        }
        1 => {
            // A service log with one backup job among many.
            let n = (size / 95).max(40);
            let jobs = ids(rng, "BK", n / 20 + 5, 5);
            let target = rng.range(0, jobs.len() as u64) as usize;
            let target_line = rng.range(0, n as u64) as usize;
            let code = format!("E-{}", rng.range(1000, 10_000));
            let mut text = String::with_capacity(size + 200);
            for i in 0..n {
                let ts = format!("2025-06-{:02}T{}Z", 1 + i * 28 / n, time(rng));
                let host = format!("node-{:02}", rng.range(1, 40));
                let line = if i == target_line {
                    format!(
                        "{ts} {host} backup[{}]: backup job {} failed with error code {code}",
                        rng.range(100, 9999),
                        jobs[target]
                    )
                } else {
                    match rng.range(0, 6) {
                        0 => {
                            let mut j = rng.range(0, jobs.len() as u64) as usize;
                            if j == target {
                                j = (j + 1) % jobs.len();
                            }
                            if rng.chance(0.3) {
                                format!(
                                    "{ts} {host} backup[{}]: backup job {} failed with error code E-{}",
                                    rng.range(100, 9999),
                                    jobs[j],
                                    rng.range(1000, 10_000)
                                )
                            } else {
                                format!(
                                    "{ts} {host} backup[{}]: backup job {} completed in {}s",
                                    rng.range(100, 9999),
                                    jobs[j],
                                    rng.range(5, 900)
                                )
                            }
                        }
                        1 => format!(
                            "{ts} {host} sshd[{}]: accepted publickey for deploy from 10.0.{}.{}",
                            rng.range(100, 9999),
                            rng.range(0, 255),
                            rng.range(1, 255)
                        ),
                        2 => format!(
                            "{ts} {host} cron[{}]: running scheduled task rotate-logs",
                            rng.range(100, 9999)
                        ),
                        3 => format!(
                            "{ts} {host} kernel: eth0 link up at {} Mbps",
                            rng.pick(&[100, 1000, 10000])
                        ),
                        4 => format!(
                            "{ts} {host} app[{}]: request served in {} ms",
                            rng.range(100, 9999),
                            rng.range(2, 900)
                        ),
                        _ => format!(
                            "{ts} {host} disk[{}]: usage at {}%",
                            rng.range(100, 9999),
                            rng.range(10, 99)
                        ),
                    }
                };
                text.push_str(&line);
                text.push('\n');
            }
            let job = &jobs[target];
            let question = match rng.range(0, 2) {
                0 => format!("What error code did backup job {job} fail with?"),
                _ => format!("Backup job {job} failed. Which error code did it report?"),
            };
            Gen {
                question,
                expected: exact(code),
                scoring: Scoring::Exact,
                data: Data::Files(vec![("services.log".into(), text)]),
                tags: vec!["log".into()],
            }
        }
        _ => {
            // Orders as CSV.
            let n = (size / 60).max(20);
            let ids = ids(rng, "O", n, 6);
            let target = rng.range(0, n as u64) as usize;
            let mut text = String::from("order_id,date,customer,product,quantity,unit_price\n");
            let mut answer = String::new();
            for (i, id) in ids.iter().enumerate() {
                let product = *rng.pick(PRODUCTS);
                if i == target {
                    answer = product.to_string();
                }
                text.push_str(&format!(
                    "{id},{},{},{product},{},{}.{:02}\n",
                    date(rng),
                    rng.pick(COMPANIES),
                    rng.range(1, 60),
                    rng.range(5, 400),
                    rng.range(0, 100)
                ));
            }
            let id = &ids[target];
            let question = match rng.range(0, 2) {
                0 => format!("Which product was ordered in order {id}?"),
                _ => format!("What did the customer buy in order {id}?"),
            };
            Gen {
                question,
                expected: exact(answer),
                scoring: Scoring::Exact,
                data: Data::Files(vec![("orders.csv".into(), text)]),
                tags: vec!["csv".into()],
            }
        }
    }
}

fn count(rng: &mut Rng, size: usize) -> Gen {
    if rng.chance(0.5) {
        let n = (size / 55).max(30);
        let country = *rng.pick(COUNTRIES);
        let threshold = rng.range(20, 41);
        let mut text = String::from("order_id,date,country,product,quantity\n");
        let mut right = 0;
        for id in ids(rng, "O", n, 6) {
            let c = if rng.chance(0.25) {
                country
            } else {
                *rng.pick(COUNTRIES)
            };
            let q = rng.range(1, 61);
            if c == country && q > threshold {
                right += 1;
            }
            text.push_str(&format!(
                "{id},{},{c},{},{q}\n",
                date(rng),
                rng.pick(PRODUCTS)
            ));
        }
        let question = match rng.range(0, 2) {
            0 => format!(
                "How many orders shipped to {country} had a quantity greater than {threshold}?"
            ),
            _ => format!("Count the {country} orders with more than {threshold} units."),
        };
        Gen {
            question,
            expected: number(right as f64),
            scoring: EXACT_NUMBER,
            data: Data::Files(vec![("orders.csv".into(), text)]),
            tags: vec!["csv".into()],
        }
    } else {
        let n = (size / 120).max(30);
        let prio = *rng.pick(&["P1", "P2", "P3"]);
        let mut text = String::new();
        let mut right = 0;
        for id in ids(rng, "T", n, 6) {
            let p = *rng.pick(&["P1", "P2", "P3", "P4"]);
            let status = *rng.pick(&["open", "closed", "closed", "in_progress"]);
            if p == prio && status == "open" {
                right += 1;
            }
            text.push_str(&format!(
                "{{\"ticket\": \"{id}\", \"priority\": \"{p}\", \"status\": \"{status}\", \"team\": \"{}\", \"opened\": \"{}\"}}\n",
                rng.pick(SERVICES),
                date(rng)
            ));
        }
        let question = match rng.range(0, 2) {
            0 => format!("How many {prio} tickets are still open?"),
            _ => format!("Count the open tickets with priority {prio}."),
        };
        Gen {
            question,
            expected: number(right as f64),
            scoring: EXACT_NUMBER,
            data: Data::Files(vec![("tickets.jsonl".into(), text)]),
            tags: vec!["jsonl".into()],
        }
    }
}

fn sum(rng: &mut Rng, size: usize) -> Gen {
    let n = (size / 50).max(30);
    let customer = *rng.pick(COMPANIES);
    let mut text = String::from("invoice_id,date,customer,amount_usd,status\n");
    let mut cents: u64 = 0;
    for id in ids(rng, "INV", n, 6) {
        let c = if rng.chance(0.15) {
            customer
        } else {
            *rng.pick(COMPANIES)
        };
        let amount = rng.range(1_000, 500_000);
        let status = *rng.pick(&["paid", "paid", "unpaid", "void"]);
        if c == customer && status == "paid" {
            cents += amount;
        }
        text.push_str(&format!(
            "{id},{},{c},{}.{:02},{status}\n",
            date(rng),
            amount / 100,
            amount % 100
        ));
    }
    let question = match rng.range(0, 2) {
        0 => format!("What is the total amount of the paid invoices of {customer}, in USD?"),
        _ => format!("How much has {customer} paid in total (paid invoices only, USD)?"),
    };
    Gen {
        question,
        expected: number(cents as f64 / 100.0),
        scoring: Scoring::Number {
            tolerance: 0.01,
            relative: 0.0,
        },
        data: Data::Files(vec![("invoices.csv".into(), text)]),
        tags: vec!["csv".into()],
    }
}

fn topk(rng: &mut Rng, size: usize) -> Gen {
    let n = (size / 80).max(60);
    // Error weights with clear gaps between the top services.
    let mut services: Vec<&str> = SERVICES.to_vec();
    for i in (1..services.len()).rev() {
        let j = rng.range(0, i as u64 + 1) as usize;
        services.swap(i, j);
    }
    let weights: Vec<u64> = (0..services.len())
        .map(|i| match i {
            0 => 30,
            1 => 20,
            2 => 13,
            _ => 6,
        })
        .collect();
    let total: u64 = weights.iter().sum();
    let mut counts = vec![0usize; services.len()];
    let mut text = String::with_capacity(size + 100);
    for i in 0..n {
        let ts = format!("2025-07-{:02} {}", 1 + i * 30 / n, time(rng));
        if rng.chance(0.4) {
            let mut r = rng.range(0, total);
            let mut k = 0;
            while r >= weights[k] {
                r -= weights[k];
                k += 1;
            }
            counts[k] += 1;
            text.push_str(&format!(
                "{ts} ERROR [{}] {}\n",
                services[k],
                rng.pick(&[
                    "timeout calling upstream",
                    "null reference in handler",
                    "connection refused",
                    "quota exceeded",
                    "invalid response"
                ])
            ));
        } else {
            text.push_str(&format!(
                "{ts} {} [{}] {}\n",
                rng.pick(&["INFO", "INFO", "DEBUG", "WARN"]),
                rng.pick(SERVICES),
                rng.pick(&[
                    "request ok",
                    "cache hit",
                    "retrying once",
                    "user signed in",
                    "job scheduled"
                ])
            ));
        }
    }
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(counts[k]));
    // A tie at the cut would make the question ambiguous: break it in the data.
    let top: Vec<String> = order
        .iter()
        .take(3)
        .map(|&k| services[k].to_string())
        .collect();
    let clear = counts[order[0]] > counts[order[1]] && counts[order[2]] > counts[order[3]];
    if !clear {
        // Add distinct extra errors to the leaders (rare; small data).
        let extra = format!(
            "2025-07-31 23:59:58 ERROR [{}] invalid response\n2025-07-31 23:59:59 ERROR [{}] invalid response\n2025-07-31 23:59:59 ERROR [{}] timeout calling upstream\n",
            services[order[0]], services[order[0]], services[order[2]]
        );
        text.push_str(&extra);
        counts[order[0]] += 2;
        counts[order[2]] += 1;
        order.sort_by_key(|&k| std::cmp::Reverse(counts[k]));
    }
    let top: Vec<String> = if clear {
        top
    } else {
        order
            .iter()
            .take(3)
            .map(|&k| services[k].to_string())
            .collect()
    };
    if rng.chance(0.5) {
        Gen {
            question: match rng.range(0, 2) {
                0 => "Which service logged the most ERROR lines?".into(),
                _ => "Which service has the highest number of errors in this log?".into(),
            },
            expected: exact(top[0].clone()),
            scoring: Scoring::Exact,
            data: Data::Files(vec![("app.log".into(), text)]),
            tags: vec!["log".into(), "argmax".into()],
        }
    } else {
        Gen {
            question: "Name the three services with the most ERROR lines.".into(),
            expected: Expected::Set(top),
            scoring: Scoring::Set,
            data: Data::Files(vec![("app.log".into(), text)]),
            tags: vec!["log".into(), "top3".into()],
        }
    }
}

fn join(rng: &mut Rng, size: usize) -> Gen {
    let people = (size / 400).clamp(15, 5000);
    let emp_ids = ids(rng, "E", people, 5);
    let mut names = std::collections::HashSet::new();
    let mut staff = String::from("employee_id,name,department,office\n");
    let mut roster = Vec::new();
    // Unique names, none a part of another (with a middle initial when the plain pairs run
    // short).
    let initials = people > FIRST.len() * LAST.len() / 2;
    for id in &emp_ids {
        let mut name;
        loop {
            name = if initials {
                format!(
                    "{} {}. {}",
                    rng.pick(FIRST),
                    (b'A' + rng.range(0, 26) as u8) as char,
                    rng.pick(LAST)
                )
            } else {
                person(rng)
            };
            if names.insert(name.clone()) {
                break;
            }
        }
        staff.push_str(&format!(
            "{id},{name},{},{}\n",
            rng.pick(&[
                "Finance",
                "Sales",
                "Engineering",
                "Support",
                "Legal",
                "Facilities"
            ]),
            rng.pick(CITIES)
        ));
        roster.push((id.clone(), name));
    }
    let target = rng.range(0, roster.len() as u64) as usize;
    let doors = [
        "north entrance",
        "loading dock",
        "server room",
        "lab 2",
        "roof access",
        "archive",
        "parking gate",
    ];
    let n = (size / 60).max(40);
    let mut log = String::with_capacity(size);
    let mut last_door = String::new();
    let mut target_seen = false;
    for i in 0..n {
        let who = if rng.chance(0.05) || (!target_seen && i + 3 >= n) {
            target
        } else {
            rng.range(0, roster.len() as u64) as usize
        };
        let door = *rng.pick(&doors);
        if who == target {
            last_door = door.to_string();
            target_seen = true;
        }
        log.push_str(&format!(
            "2025-08-{:02} {:02}:{:02} badge {} door=\"{door}\" result=granted\n",
            1 + i * 28 / n,
            (i * 24 / n) % 24,
            rng.range(0, 60),
            roster[who].0
        ));
    }
    let name = &roster[target].1;
    let question = match rng.range(0, 2) {
        0 => format!("Which door did {name} badge through last?"),
        _ => format!("What was the last door {name} used, according to the badge log?"),
    };
    Gen {
        question,
        expected: exact(last_door),
        scoring: Scoring::Exact,
        data: Data::Files(vec![
            ("staff.csv".into(), staff),
            ("badges.log".into(), log),
        ]),
        tags: vec!["csv".into(), "log".into(), "two-hop".into()],
    }
}

const POSITIVE: &[&str] = &[
    "It heats up in under two minutes and looks great on the counter.",
    "Exactly what I hoped for; I use it every morning and would buy it again.",
    "Solid build, quiet, and the handle stays cool. Very happy with it.",
    "Setup took a minute and it has worked flawlessly since.",
    "My partner was skeptical but now uses it more than I do.",
    "Well worth the price, it replaced two older gadgets in our kitchen.",
    "Arrived early, simple to clean, and it does the job perfectly.",
];
const NEGATIVE: &[&str] = &[
    "The lid stopped closing after a week and now it drips on the counter.",
    "Returned it: the base got hot enough to mark the table.",
    "Stopped working on day ten and support never answered my emails.",
    "It rattles loudly and the plastic smell never went away.",
    "Half the buttons do nothing now. A waste of money.",
    "The cord is so short it barely reaches the socket, and it trips the breaker.",
    "Looks nice in photos, but the coating started peeling within a month.",
];
const NEUTRAL_OPENERS: &[&str] = &[
    "Bought this for our office kitchen.",
    "Second unit in our household.",
    "Ordered on a sale.",
    "Gift from my sister.",
    "Needed a replacement quickly.",
    "",
];

fn classify(rng: &mut Rng, size: usize) -> Gen {
    // Judging each review needs a sub-LLM call: the number of reviews grows slowly.
    let n = match size {
        0..=50_000 => 30,
        50_001..=1_000_000 => 40,
        _ => 60,
    };
    let products = ["Aurora kettle", "Breeze fan", "Cinder toaster"];
    let target = *rng.pick(&products);
    let mut text = String::new();
    let mut right = 0;
    for id in ids(rng, "R", n, 5) {
        let product = if rng.chance(0.5) {
            target
        } else {
            *rng.pick(&products)
        };
        let negative = rng.chance(0.45);
        if product == target && negative {
            right += 1;
        }
        let body = if negative {
            rng.pick(NEGATIVE)
        } else {
            rng.pick(POSITIVE)
        };
        let review = format!("{} {}", rng.pick(NEUTRAL_OPENERS), body)
            .trim()
            .to_string();
        text.push_str(&format!(
            "{{\"review_id\": \"{id}\", \"product\": \"{product}\", \"stars\": null, \"text\": \"{review}\"}}\n"
        ));
    }
    Gen {
        question: format!(
            "The reviews have no star ratings. How many of the reviews of the {target} are negative?"
        ),
        expected: number(right as f64),
        scoring: EXACT_NUMBER,
        data: Data::Files(vec![("reviews.jsonl".into(), text)]),
        tags: vec!["jsonl".into(), "semantic".into()],
    }
}

fn multidoc(rng: &mut Rng, size: usize) -> Gen {
    let docs_n = (size / 2_000).clamp(5, 200);
    let teams = [
        "Atlas", "Beacon", "Comet", "Delta", "Ember", "Falcon", "Granite", "Harbor",
    ];
    let target_doc = rng.range(0, docs_n as u64) as usize;
    let target_team = *rng.pick(&teams);
    let budget = rng.range(12, 95) * 1000;
    let mut docs = Vec::with_capacity(docs_n);
    let per_doc = size / docs_n;
    for d in 0..docs_n {
        let team = if d == target_doc {
            target_team
        } else {
            *rng.pick(&teams)
        };
        let mut doc = format!(
            "Meeting notes: team {team}, {}\nAttendees: {}, {}, {}\n\nDiscussion:\n",
            date(rng),
            person(rng),
            person(rng),
            person(rng)
        );
        while doc.len() < per_doc.saturating_sub(120) {
            doc.push_str(&format!(
                "- {} reviewed the {} and {}.\n",
                person(rng),
                rng.pick(&[
                    "release checklist",
                    "on-call rota",
                    "hiring plan",
                    "vendor contract",
                    "roadmap draft",
                    "incident report"
                ]),
                rng.pick(&[
                    "asked for changes",
                    "approved it",
                    "will follow up next week",
                    "raised two concerns",
                    "had no comments"
                ])
            ));
        }
        doc.push_str("\nDecisions:\n");
        if d == target_doc {
            doc.push_str(&format!(
                "- The {team} team approved a budget of ${budget} for the data migration project.\n"
            ));
        } else {
            let other = rng.range(12, 95) * 1000;
            doc.push_str(&format!(
                "- The {team} team approved a budget of ${other} for the {} project.\n",
                rng.pick(&[
                    "office move",
                    "security audit",
                    "training",
                    "website refresh"
                ])
            ));
        }
        docs.push(doc);
    }
    Gen {
        question: format!(
            "What budget did the {target_team} team approve for the data migration project, in dollars?"
        ),
        expected: number(budget as f64),
        scoring: EXACT_NUMBER,
        data: Data::Documents(docs),
        tags: vec!["documents".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(seed: u64, sizes: &[usize]) -> Generated {
        generate(&["all".to_string()], seed, sizes, "data").unwrap()
    }

    #[test]
    fn same_seed_same_suite_other_seed_other_data() {
        let a = all(1, &[10_000]);
        let b = all(1, &[10_000]);
        let c = all(2, &[10_000]);
        assert_eq!(a.suite, b.suite);
        assert_eq!(a.files, b.files);
        assert_ne!(a.files, c.files);
        assert_eq!(a.suite.tasks.len(), FAMILIES.len());
    }

    #[test]
    fn data_reaches_the_requested_size_and_holds_the_answer() {
        for seed in 1..4 {
            let g = all(seed, &[10_000, 300_000]);
            for t in &g.suite.tasks {
                let file_bytes = |p: &std::path::PathBuf| -> usize {
                    let p = p.to_string_lossy();
                    g.files
                        .iter()
                        .filter(|(r, _)| *r == p)
                        .map(|(_, c)| c.len())
                        .sum()
                };
                let bytes: usize = match &t.context {
                    TaskContext::File(p) => file_bytes(p),
                    TaskContext::Files(ps) => ps.iter().map(file_bytes).sum(),
                    TaskContext::Documents(d) => d.iter().map(String::len).sum(),
                    _ => 0,
                };
                let want = if t.tags.iter().any(|x| x == "10KB") {
                    10_000
                } else {
                    300_000
                };
                if t.family != "classify" {
                    assert!(bytes as f64 >= want as f64 * 0.6, "{}: {bytes} bytes", t.id);
                    assert!(
                        bytes as f64 <= want as f64 * 1.6 + 2_000.0,
                        "{}: {bytes} bytes",
                        t.id
                    );
                }
                // Text answers occur in the data.
                if let Expected::Text(a) = &t.expected {
                    let found = g.files.iter().any(|(_, c)| c.contains(a.as_str()))
                        || matches!(&t.context, TaskContext::Documents(d) if d.iter().any(|x| x.contains(a.as_str())));
                    assert!(found, "{}: {a}", t.id);
                }
            }
        }
    }

    #[test]
    fn counts_are_right_when_recomputed_from_the_data() {
        // The count family's CSV variant, recomputed independently.
        for seed in 0..20 {
            let g = generate(&["count".to_string()], seed, &[20_000], "d").unwrap();
            let t = &g.suite.tasks[0];
            let Expected::Number(want) = t.expected else {
                panic!()
            };
            let data = &g.files[0].1;
            let q = &t.question;
            let got = if g.files[0].0.ends_with(".csv") {
                let country = COUNTRIES.iter().find(|c| q.contains(*c)).unwrap();
                let thr: u64 = q
                    .split(|c: char| !c.is_ascii_digit())
                    .rfind(|s| !s.is_empty())
                    .unwrap()
                    .parse()
                    .unwrap();
                data.lines()
                    .skip(1)
                    .filter(|l| {
                        let f: Vec<&str> = l.split(',').collect();
                        f[2] == *country && f[4].parse::<u64>().unwrap() > thr
                    })
                    .count()
            } else {
                let p = ["P1", "P2", "P3"].iter().find(|p| q.contains(*p)).unwrap();
                data.lines()
                    .filter(|l| {
                        l.contains(&format!("\"priority\": \"{p}\""))
                            && l.contains("\"status\": \"open\"")
                    })
                    .count()
            };
            assert_eq!(got as f64, want, "seed {seed}: {q}");
        }
    }

    #[test]
    fn families_and_sizes_are_checked() {
        assert!(
            generate(&["nope".into()], 1, &[10_000], "d")
                .unwrap_err()
                .contains("unknown task family")
        );
        assert!(generate(&[], 1, &[10_000], "d").is_err());
        assert!(generate(&["sum".into()], 1, &[10], "d").is_err());
        assert_eq!(parse_size("300KB"), Some(300_000));
        assert_eq!(parse_size("50mb"), Some(50_000_000));
        assert_eq!(parse_size("x"), None);
        assert_eq!(size_label(3_000_000), "3MB");
        assert_eq!(size_label(10_000), "10KB");
    }
}
