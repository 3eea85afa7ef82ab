//! `rlm demo`: a real RLM task on a multi-megabyte document that does not fit the local
//! model's context window: two facts buried in a fleet maintenance log must be found and
//! combined.

use std::fmt::Write;

/// The question the demo asks.
pub const QUESTION: &str = "One van FAILED its inspection on 2025-06-14. Which van was it, and what was the total cost in EUR \
     of its REPAIR COMPLETED record? Find the failed inspection first, then search for that van's repair. Give both \
     in the final answer, formatted like: VAN-1234, 567 EUR";

/// Parts of a correct answer.
pub const EXPECTED: [&str; 2] = ["2731", "1840"];

/// The document (deterministic, about 3.4 MB, 52,000 lines).
pub fn document() -> String {
    let mut s = String::with_capacity(3_600_000);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let depots = [
        "Hamburg", "Leipzig", "Bremen", "Kassel", "Dresden", "Rostock", "Erfurt", "Kiel",
    ];
    let parts = [
        "brake pads",
        "wiper blades",
        "tyres",
        "battery",
        "headlight",
        "mirror",
        "clutch",
        "filters",
    ];
    let _ = writeln!(
        s,
        "FLEET MAINTENANCE LOG 2025 - Nordwind Logistics - 400 vans, 8 depots"
    );
    for line in 1..52_000u64 {
        let r = next();
        let day = 1 + (line * 365 / 52_000);
        let (m, d) = month_day(day);
        let van = match 1000 + r % 3000 {
            2731 => 2732, // the van of the buried facts appears nowhere else
            v => v,
        };
        let depot = depots[(r >> 12) as usize % depots.len()];
        if line == 17_351 {
            let _ = writeln!(
                s,
                "2025-06-14 {depot}: inspection of VAN-2731 FAILED (brake assembly worn beyond limit); van taken off the road."
            );
            continue;
        }
        if line == 38_902 {
            let _ = writeln!(
                s,
                "2025-10-23 Kassel: REPAIR COMPLETED for VAN-2731: brake assembly replaced, total cost 1840 EUR, back in service."
            );
            continue;
        }
        match r % 9 {
            0..=2 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: inspection of VAN-{van} passed; odometer {} km.",
                    10_000 + (r >> 20) % 190_000
                );
            }
            3 | 4 => {
                let part = parts[(r >> 30) as usize % parts.len()];
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: REPAIR COMPLETED for VAN-{van}: {part} replaced, total cost {} EUR, back in service.",
                    40 + (r >> 24) % 900
                );
            }
            5 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: fuel delivery {} litres; driver shift change at {:02}:00.",
                    200 + (r >> 18) % 800,
                    (r >> 40) % 24
                );
            }
            6 => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: route planning meeting; {} parcels scheduled for tomorrow.",
                    1000 + (r >> 22) % 9000
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "2025-{m:02}-{d:02} {depot}: VAN-{van} cleaned and refuelled; tyre pressure checked."
                );
            }
        }
    }
    s
}

fn month_day(day: u64) -> (u64, u64) {
    let lens = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut d = day.clamp(1, 365);
    for (i, l) in lens.iter().enumerate() {
        if d <= *l {
            return (i as u64 + 1, d);
        }
        d -= l;
    }
    (12, 31)
}

/// True when `answer` names the van and the cost.
pub fn is_correct(answer: &str) -> bool {
    EXPECTED.iter().all(|e| answer.contains(e))
}
