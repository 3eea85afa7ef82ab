//! Secret rules and the one-pass scanner that finds them (pure code).
//!
//! Each rule has a name, a trigger (how the scanner finds where a secret may start) and a
//! pattern matched *anchored* there by a linear-time regex. The scanner walks the text once,
//! byte class by byte class: per word (a run of `[A-Za-z0-9_.-]`) it tries prefix rules at its
//! start (and after `-`/`.` inside long words), word-start rules, keyword rules at its end
//! when `:`/`=` follows, rules triggered by the byte after or before the word, and URL
//! schemes before `://`; per token (`[A-Za-z0-9_+/=-]`) it can report high entropy; per run
//! start it can call a hook (the egress filter's context-echo probe). Both the egress filter
//! (whole spans, redacted) and masking (the secret's value only, replaced by a placeholder)
//! use it.
//!
//! Covered formats: named vendor formats (cloud, CI, registries, chat, payments, AI,
//! monitoring, databases, secret stores, ...), PEM private keys, JWTs, credentials in URLs,
//! `Authorization: Bearer|Basic`, and `password`/`secret`/`token`/`*_key` assignments. The
//! entropy rule is separate (masking never uses it: it would destroy hashes and ids).

use std::sync::OnceLock;

use regex_automata::meta::Regex;

/// How a rule is found before its pattern is checked.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// A word (or a part of one after `-` or `.`) of at least [`MIN_PREFIX_WORD`] bytes
    /// starting with one of these literals (case-sensitive).
    Prefix(&'static [&'static str]),
    /// A word ending with one of these keywords (ASCII case-insensitive), followed within a
    /// few bytes by `:` or `=`; anchored at the keyword.
    KeywordSuffix(&'static [&'static str]),
    /// A word starting with this (ASCII case-insensitive).
    WordStartCi(&'static str),
    /// A word ending with `suffix` (case-sensitive) and followed by the byte `next`;
    /// anchored `back` bytes before the end of the word (or not at all if the word is
    /// shorter).
    WordEndThen {
        suffix: &'static str,
        next: u8,
        back: usize,
    },
    /// A word starting with `prefix` (case-sensitive) right after the byte `prev`; anchored
    /// at `prev`.
    AfterByte { prev: u8, prefix: &'static str },
    /// The URL scheme before a `://`.
    Scheme(Authority),
}

/// What the authority of a URL (between `://` and the next `/`) must look like for a scheme
/// rule to be tried: checked before any regex runs, so URL-dense text stays cheap.
#[derive(Debug, Clone, Copy)]
enum Authority {
    /// Holds user information (`user:password@host`).
    UserInfo,
    /// The host ends with one of these.
    HostEndsWith(&'static [&'static str]),
}

impl Authority {
    fn admits(self, authority: &[u8]) -> bool {
        match self {
            Authority::UserInfo => authority.contains(&b'@'),
            Authority::HostEndsWith(hosts) => hosts.iter().any(|h| {
                authority.len() >= h.len()
                    && authority[authority.len() - h.len()..].eq_ignore_ascii_case(h.as_bytes())
            }),
        }
    }
}

/// Which part of a rule's match is the secret itself (what masking replaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// The whole match.
    Whole,
    /// After the first `:` or `=`, whitespace and quotes; a trailing quote is not part of it.
    AfterAssign,
    /// After the last whitespace (`Bearer <token>`, `Basic <token>`).
    LastWord,
    /// The password of `scheme://user:password@host`.
    UrlPassword,
}

/// A secret rule.
struct Rule {
    name: &'static str,
    trigger: Trigger,
    pattern: &'static str,
    value: Value,
    /// An extra check on the match (cuts false positives a regex cannot express).
    check: Option<fn(&[u8]) -> bool>,
}

const fn rule(name: &'static str, trigger: Trigger, pattern: &'static str) -> Rule {
    Rule {
        name,
        trigger,
        pattern,
        value: Value::Whole,
        check: None,
    }
}

const fn valued(name: &'static str, trigger: Trigger, pattern: &'static str, value: Value) -> Rule {
    Rule {
        name,
        trigger,
        pattern,
        value,
        check: None,
    }
}

const fn checked(
    name: &'static str,
    trigger: Trigger,
    pattern: &'static str,
    check: fn(&[u8]) -> bool,
) -> Rule {
    Rule {
        name,
        trigger,
        pattern,
        value: Value::Whole,
        check: Some(check),
    }
}

/// Kebab-case words (`sk-learn-compatible-estimators`) are not keys: a key body has a digit
/// or an upper-case letter.
fn has_digit_or_upper(m: &[u8]) -> bool {
    m.iter()
        .skip(3)
        .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

/// A Discord bot token's first part is the base64 of a numeric id.
fn discord_shape(m: &[u8]) -> bool {
    m.iter().filter(|&&b| b == b'.').count() == 2 && has_digit_or_upper(m)
}

use Trigger::{AfterByte, KeywordSuffix, Prefix, Scheme, WordEndThen, WordStartCi};

/// The rules. Order matters where two rules share a trigger: the first whose pattern matches
/// wins (prefixes are also tried longest first).
const RULES: &[Rule] = &[
    rule(
        "private_key",
        WordStartCi("-----begin"),
        r"-----BEGIN[A-Z0-9 _\-]*PRIVATE KEY(?: BLOCK)?-----(?s:.)*?(?:-----END[A-Z0-9 _\-]*PRIVATE KEY(?: BLOCK)?-----|\z)",
    ),
    rule(
        "aws_access_key_id",
        Prefix(&["AKIA", "ASIA", "ABIA", "ACCA", "A3T"]),
        r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
    ),
    valued(
        "aws_secret_access_key",
        WordStartCi("aws"),
        r#"\b(?i:aws_?secret(?:_?access)?_?key)\\*["']?\s*(?:[:=]|%3[ADad])\s*\\*["']?[A-Za-z0-9/+]{40}"#,
        Value::AfterAssign,
    ),
    rule(
        "github_token",
        Prefix(&["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]),
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,255}",
    ),
    rule(
        "github_pat",
        Prefix(&["github_pat_"]),
        r"\bgithub_pat_[A-Za-z0-9_]{22,255}",
    ),
    rule(
        "gitlab_token",
        Prefix(&["glpat-"]),
        r"\bglpat-[A-Za-z0-9_\-]{20,300}(?:\.[0-9a-z]{2}\.[0-9a-z]{9}|\.[0-9a-z]{9})?",
    ),
    rule(
        "gitlab_runner_token",
        Prefix(&["glrt-", "GR1348941"]),
        r"(?:glrt-[A-Za-z0-9_\-]{20,300}(?:\.[0-9a-z]{2}\.[0-9a-z]{9}|\.[0-9a-z]{9})?|GR1348941[A-Za-z0-9_\-]{20})",
    ),
    rule(
        "gitlab_other_token",
        Prefix(&[
            "glptt-", "gldt-", "glcbt-", "glsoat-", "glft-", "glimt-", "glagent-", "gloas-",
            "glffct-",
        ]),
        r"gl(?:ptt|dt|cbt|soat|ft|imt|agent|oas|ffct)-[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*",
    ),
    valued(
        "gitlab_session_cookie",
        Prefix(&["_gitlab_session"]),
        r"_gitlab_session=[0-9a-z]{32}",
        Value::AfterAssign,
    ),
    rule(
        "anthropic_key",
        Prefix(&["sk-ant-"]),
        r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
    ),
    rule(
        "mapbox_secret_token",
        Prefix(&["sk.eyJ"]),
        r"sk\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{20,}",
    ),
    checked(
        "openai_key",
        Prefix(&["sk-"]),
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        has_digit_or_upper,
    ),
    rule(
        "google_api_key",
        Prefix(&["AIza"]),
        r"\bAIza[0-9A-Za-z_\-]{35}",
    ),
    rule(
        "google_oauth_secret",
        Prefix(&["GOCSPX-", "ya29."]),
        r"(?:GOCSPX-[A-Za-z0-9_\-]{28}|ya29\.[A-Za-z0-9_\-]{30,})",
    ),
    rule(
        "slack_webhook",
        Scheme(Authority::HostEndsWith(&["hooks.slack.com"])),
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
    ),
    rule(
        "teams_webhook",
        Scheme(Authority::HostEndsWith(&[".webhook.office.com"])),
        r"https://[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_\-]{60,}",
    ),
    rule(
        "discord_webhook",
        Scheme(Authority::HostEndsWith(&["discord.com", "discordapp.com"])),
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,68}",
    ),
    rule(
        "slack_token",
        Prefix(&["xox", "xapp-"]),
        r"\b(?:xox(?:[abeposr]|e\.xox[bp])-[A-Za-z0-9\-]{10,}|xapp-[0-9]-[A-Z0-9]{8,15}-[0-9]{10,16}-[a-f0-9]{32,80})",
    ),
    rule(
        "stripe_key",
        Prefix(&["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"]),
        r"\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9+/]{32,})",
    ),
    rule("twilio_key", Prefix(&["SK"]), r"\bSK[0-9a-fA-F]{32}\b"),
    rule(
        "sendgrid_key",
        Prefix(&["SG."]),
        r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
    ),
    rule("npm_token", Prefix(&["npm_"]), r"\bnpm_[A-Za-z0-9]{36}\b"),
    rule(
        "pypi_token",
        Prefix(&["pypi-"]),
        r"\bpypi-[A-Za-z0-9_\-]{50,}",
    ),
    rule(
        "huggingface_token",
        Prefix(&["hf_", "api_org_"]),
        r"\b(?:hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z]{34})\b",
    ),
    rule(
        "digitalocean_token",
        Prefix(&["dop_v1_", "doo_v1_", "dor_v1_"]),
        r"do[opr]_v1_[a-f0-9]{64}\b",
    ),
    rule(
        "shopify_token",
        Prefix(&["shpat_", "shpss_", "shpca_", "shppa_"]),
        r"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}\b",
    ),
    rule(
        "telegram_bot_token",
        AfterByte {
            prev: b':',
            prefix: "AA",
        },
        r":AA[A-Za-z0-9_\-]{33}",
    ),
    rule(
        "alibaba_access_key_id",
        Prefix(&["LTAI"]),
        r"LTAI[A-Za-z0-9]{12,20}\b",
    ),
    rule(
        "azure_ad_client_secret",
        WordEndThen {
            suffix: "Q",
            next: b'~',
            back: 5,
        },
        r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}",
    ),
    valued(
        "azure_storage_key",
        KeywordSuffix(&["accountkey", "sharedaccesskey"]),
        r"(?i:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{43,86}={0,2}",
        Value::AfterAssign,
    ),
    rule(
        "aws_bedrock_api_key",
        Prefix(&["ABSKQmVkcm9ja0FQSUtleS", "bedrock-api-key-"]),
        r"(?:ABSKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{91,251}={0,2}|bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/]*={0,2})",
    ),
    rule(
        "heroku_api_key",
        Prefix(&["HRKU-AA"]),
        r"HRKU-AA[A-Za-z0-9_\-]{58}",
    ),
    rule(
        "cloudflare_origin_ca_key",
        Prefix(&["v1.0-"]),
        r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}",
    ),
    rule(
        "flyio_token",
        Prefix(&["fo1_", "fm1a_", "fm1r_", "fm2_"]),
        r"(?:fo1_[A-Za-z0-9_\-]{43}|fm1[ar]_[A-Za-z0-9+/]{100,}={0,3}|fm2_[A-Za-z0-9+/]{100,}={0,3})",
    ),
    rule(
        "openshift_token",
        WordEndThen {
            suffix: "sha256",
            next: b'~',
            back: 6,
        },
        r"sha256~[A-Za-z0-9_\-]{43}",
    ),
    rule(
        "vault_token",
        Prefix(&["hvs.", "hvb.", "hvr."]),
        r"hv[sbr]\.[A-Za-z0-9_\-]{24,}",
    ),
    rule(
        "terraform_cloud_token",
        Prefix(&["atlasv1."]),
        r"atlasv1\.[A-Za-z0-9_=\-]{60,70}",
    ),
    rule(
        "databricks_token",
        Prefix(&["dapi"]),
        r"dapi[a-f0-9]{32}(?:-[0-9])?\b",
    ),
    rule(
        "doppler_token",
        Prefix(&[
            "dp.pt.",
            "dp.st.",
            "dp.ct.",
            "dp.sa.",
            "dp.scim.",
            "dp.audit.",
        ]),
        r"dp\.(?:pt|ct|sa|scim|audit|st(?:\.[a-z0-9_\-]{2,35})?)\.[A-Za-z0-9]{40,44}",
    ),
    rule("pulumi_token", Prefix(&["pul-"]), r"pul-[a-f0-9]{40}\b"),
    rule(
        "jfrog_token",
        Prefix(&["AKCp", "cmVmd"]),
        r"(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})\b",
    ),
    rule(
        "rubygems_token",
        Prefix(&["rubygems_"]),
        r"rubygems_[a-f0-9]{48}\b",
    ),
    rule("nuget_api_key", Prefix(&["oy2"]), r"oy2[a-z0-9]{43}\b"),
    valued(
        "nuget_config_password",
        WordEndThen {
            suffix: "ClearTextPassword",
            next: b'"',
            back: 17,
        },
        r#"ClearTextPassword"\s+value="[^"]{1,256}""#,
        Value::AfterAssign,
    ),
    rule(
        "sonarqube_token",
        Prefix(&["squ_", "sqp_", "sqa_"]),
        r"sq[upa]_[a-f0-9]{40}\b",
    ),
    rule(
        "sourcegraph_token",
        Prefix(&["sgp_"]),
        r"sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}\b",
    ),
    rule(
        "postman_api_key",
        Prefix(&["PMAK-"]),
        r"PMAK-[a-fA-F0-9]{24}-[a-fA-F0-9]{34}",
    ),
    rule(
        "harness_token",
        Prefix(&["pat.", "sat."]),
        r"(?:pat|sat)\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}",
    ),
    rule(
        "airtable_pat",
        Prefix(&["pat"]),
        r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}\b",
    ),
    rule(
        "hubspot_token",
        Prefix(&["pat-na1-", "pat-eu1-"]),
        r"pat-(?:na|eu)[0-9]-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ),
    rule(
        "octopus_deploy_key",
        Prefix(&["API-"]),
        r"API-[A-Z0-9]{26}\b",
    ),
    rule(
        "circleci_token",
        Prefix(&["CCIPAT_", "CCIPRJ_"]),
        r"CCIP(?:AT|RJ)_[A-Za-z0-9]{22,26}_[a-z0-9]{40}\b",
    ),
    rule(
        "bitbucket_app_password",
        Prefix(&["ATBB"]),
        r"ATBB[A-Za-z0-9]{32}\b",
    ),
    rule(
        "atlassian_api_token",
        Prefix(&["ATATT3"]),
        r"ATATT3[A-Za-z0-9_=\-]{150,}",
    ),
    rule(
        "brevo_api_key",
        Prefix(&["xkeysib-", "xsmtpsib-"]),
        r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}",
    ),
    rule("mailgun_api_key", Prefix(&["key-"]), r"key-[a-f0-9]{32}\b"),
    rule(
        "facebook_access_token",
        Prefix(&["EAA"]),
        r"EAA[A-Za-z0-9]{100,}",
    ),
    rule(
        "square_token",
        Prefix(&["EAAA", "sq0atp-", "sq0csp-"]),
        r"(?:EAAA[A-Za-z0-9_\-]{60}|sq0atp-[A-Za-z0-9_\-]{22}|sq0csp-[A-Za-z0-9_\-]{43})",
    ),
    rule(
        "twitter_bearer_token",
        Prefix(&["AAAAAAAAAAAAAAAAAAAAAA"]),
        r"A{22}[A-Za-z0-9%]{80,100}",
    ),
    checked(
        "discord_bot_token",
        Prefix(&["M", "N", "O"]),
        r"[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}",
        discord_shape,
    ),
    rule(
        "flutterwave_key",
        Prefix(&["FLWSECK-", "FLWSECK_TEST-"]),
        r"FLWSECK(?:_TEST)?-[a-fA-F0-9]{32}-X",
    ),
    rule(
        "braintree_access_token",
        WordEndThen {
            suffix: "access_token",
            next: b'$',
            back: 12,
        },
        r"access_token\$(?:production|sandbox)\$[a-z0-9]{16}\$[a-f0-9]{32}",
    ),
    rule(
        "payments_token",
        Prefix(&[
            "duffel_live_",
            "duffel_test_",
            "shippo_live_",
            "shippo_test_",
            "EZAK",
            "EZTK",
            "access-production-",
            "access-development-",
            "access-sandbox-",
        ]),
        r"(?:duffel_(?:live|test)_[A-Za-z0-9_=\-]{43}|shippo_(?:live|test)_[a-fA-F0-9]{40}\b|EZ[AT]K[A-Za-z0-9]{54}\b|access-(?:production|development|sandbox)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})",
    ),
    rule(
        "ai_provider_key",
        Prefix(&["pplx-", "r8_", "gsk_", "xai-"]),
        r"(?:pplx-[A-Za-z0-9]{48}|r8_[A-Za-z0-9_\-]{37}|gsk_[A-Za-z0-9]{52}|xai-[A-Za-z0-9_]{80})\b",
    ),
    rule(
        "sentry_token",
        Prefix(&["sntrys_eyJ", "sntryu_"]),
        r"(?:sntrys_eyJ[A-Za-z0-9+/]{20,400}={0,2}_[A-Za-z0-9+/]{43}|sntryu_[a-f0-9]{64}\b)",
    ),
    rule(
        "grafana_token",
        Prefix(&["glc_", "glsa_", "eyJrIjoi"]),
        r"(?:glc_[A-Za-z0-9+/]{32,400}={0,3}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|eyJrIjoi[A-Za-z0-9]{70,400}={0,3})",
    ),
    rule(
        "new_relic_key",
        Prefix(&["NRAK-", "NRII-"]),
        r"NR(?:AK-[A-Za-z0-9]{27}|II-[A-Za-z0-9_\-]{32})",
    ),
    rule(
        "dynatrace_token",
        Prefix(&["dt0c01."]),
        r"dt0c01\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}",
    ),
    rule(
        "database_token",
        Prefix(&[
            "pscale_tkn_",
            "pscale_pw_",
            "pscale_oauth_",
            "sbp_",
            "sb_secret_",
            "mdb_sa_sk_",
        ]),
        r"(?:pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.\-]{32,64}|sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_\-]{20,}|mdb_sa_sk_[A-Za-z0-9_\-]{40})",
    ),
    rule(
        "saas_token",
        Prefix(&[
            "lin_api_", "ntn_", "secret_", "figd_", "nfp_", "CFPAT-", "p8e-", "fio-u-", "tfp_",
            "pnu_", "rdme_", "tk-us-", "sgp_",
        ]),
        r"(?:lin_api_[A-Za-z0-9]{40}\b|ntn_[0-9]{11}[A-Za-z0-9]{35}\b|secret_[A-Za-z0-9]{43}\b|figd_[A-Za-z0-9_\-]{40,}|nfp_[A-Za-z0-9]{36,40}\b|CFPAT-[A-Za-z0-9_\-]{43}|p8e-[A-Za-z0-9]{32}\b|fio-u-[A-Za-z0-9_=\-]{64}|tfp_[A-Za-z0-9_.=\-]{59}|pnu_[A-Za-z0-9]{36}\b|rdme_[a-z0-9]{70}\b|tk-us-[A-Za-z0-9_\-]{48})",
    ),
    rule(
        "onepassword_token",
        Prefix(&["ops_eyJ", "A3-"]),
        r"(?:ops_eyJ[A-Za-z0-9+/]{250,}={0,3}|A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}\b)",
    ),
    rule(
        "age_secret_key",
        Prefix(&["AGE-SECRET-KEY-1"]),
        r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
    ),
    rule(
        "dropbox_token",
        Prefix(&["sl."]),
        r"sl\.[A-Za-z0-9_=.\-]{130,}",
    ),
    rule(
        "jwt",
        Prefix(&["eyJ"]),
        r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
    ),
    valued(
        "url_credentials",
        Scheme(Authority::UserInfo),
        r"[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@]{1,256}:[^\s@/]{1,256}@[^\s/]+",
        Value::UrlPassword,
    ),
    valued(
        "bearer_token",
        WordStartCi("bearer"),
        r"\b(?i:bearer)\s+[A-Za-z0-9\-._~+/]{16,}=*",
        Value::LastWord,
    ),
    valued(
        "basic_auth",
        WordStartCi("authorization"),
        r#"(?i:authorization)\\*["']?\s*(?:[:=]|%3[ADad])\s*\\*["']?(?i:basic)\s+[A-Za-z0-9+/]{8,}={0,2}"#,
        Value::LastWord,
    ),
    // Docker's config.json: `"auth": "<base64 of user:password>"` (quoted, so that prose
    // about auth is left alone).
    valued(
        "docker_config_auth",
        KeywordSuffix(&["auth"]),
        r#"(?i:auth)\\*["']?\s*:\s*\\*["'][A-Za-z0-9+/]{12,}={0,2}\\*["']"#,
        Value::AfterAssign,
    ),
    // .netrc: `machine HOST login USER password PASS`.
    valued(
        "netrc_password",
        WordStartCi("machine"),
        r"(?i:machine)[ \t]+\S+[ \t]+(?:(?i:login)[ \t]+\S+[ \t]+)?(?i:password)[ \t]+\S+",
        Value::LastWord,
    ),
    // Matched from the keyword, so `access_token=`, `client_secret=`, `db_password=` and
    // `SECRET_KEY=` are caught through their endings.
    valued(
        "secret_assignment",
        KeywordSuffix(&[
            "password",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "apikey",
            "api_key",
            "api-key",
            "token",
            "credential",
            "credentials",
            "secret_key",
            "secretkey",
            "private_key",
            "privatekey",
            "access_key",
            "accesskey",
            "secretaccesskey",
            "app_key",
            "account_key",
            "master_key",
            "signing_key",
            "encryption_key",
            "license_key",
            "client_key",
        ]),
        r#"(?i:password|passwd|pwd|passphrase|secret|api[_\-]?key|token|credentials?|(?:secret|private|access|secret_?access|app|account|master|signing|encryption|license|client)_?key)\\*["']?\s*(?:[:=]|%3[ADad])\s*\\*["']?(?:[^\s"',;\\]|\\[^\s"'])(?:[^\s"',;\\]|\\[^\s"']){5,}"#,
        Value::AfterAssign,
    ),
];

/// Shortest word a prefix rule is tried on.
const MIN_PREFIX_WORD: usize = 14;

/// How masks name secrets: `[SECRET:<kind>#<n>]`. Matches starting with it are never
/// secrets (a placeholder is not a leak, and stays readable for the code).
pub(crate) const PLACEHOLDER_OPEN: &[u8] = b"[SECRET:";

/// A found secret: the byte range of the whole match, the range of the secret value inside
/// it, and the rule's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) value_start: usize,
    pub(crate) value_end: usize,
    pub(crate) rule: &'static str,
}

impl Span {
    /// A span whose value is the whole range (entropy, context echo).
    pub(crate) fn whole(start: usize, end: usize, rule: &'static str) -> Span {
        Span {
            start,
            end,
            value_start: start,
            value_end: end,
            rule,
        }
    }
}

/// The compiled rule set. A rule's regex is compiled the first time its trigger fires: most
/// texts trigger few rules, and a short-lived process (`rlm egress scan`) should not pay for
/// all of them.
struct Compiled {
    regexes: Vec<OnceLock<Regex>>,
    /// First byte → (prefix, rule), longest first.
    prefixes: Vec<Vec<(&'static [u8], usize)>>,
    /// Lower-cased first byte → (word start, rule).
    word_starts: Vec<Vec<(&'static [u8], usize)>>,
    word_start_first: [bool; 256],
    /// Whether a word ending with this byte can end a keyword.
    word_last: [bool; 256],
    /// Whether a word ending with this byte, followed by that byte, can fire a
    /// `WordEndThen` rule.
    end_then_last: [bool; 256],
    end_then_next: [bool; 256],
    /// Whether a word after this byte can fire an `AfterByte` rule.
    after_prev: [bool; 256],
    /// (keyword, rule), longest first.
    keywords: Vec<(&'static [u8], usize)>,
    /// (suffix, next byte, back, rule).
    word_end_then: Vec<(&'static [u8], u8, usize, usize)>,
    /// (previous byte, prefix, rule).
    after_byte: Vec<(u8, &'static [u8], usize)>,
    schemes: Vec<(Authority, usize)>,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = Compiled {
            regexes: Vec::new(),
            prefixes: vec![Vec::new(); 256],
            word_starts: vec![Vec::new(); 256],
            word_start_first: [false; 256],
            word_last: [false; 256],
            end_then_last: [false; 256],
            end_then_next: [false; 256],
            after_prev: [false; 256],
            keywords: Vec::new(),
            word_end_then: Vec::new(),
            after_byte: Vec::new(),
            schemes: Vec::new(),
        };
        for (r, rule) in RULES.iter().enumerate() {
            c.regexes.push(OnceLock::new());
            match rule.trigger {
                Prefix(ps) => ps
                    .iter()
                    .for_each(|p| c.prefixes[p.as_bytes()[0] as usize].push((p.as_bytes(), r))),
                WordStartCi(w) => {
                    let first = w.as_bytes()[0];
                    c.word_starts[first.to_ascii_lowercase() as usize].push((w.as_bytes(), r));
                    c.word_start_first[first.to_ascii_lowercase() as usize] = true;
                    c.word_start_first[first.to_ascii_uppercase() as usize] = true;
                }
                KeywordSuffix(ks) => {
                    for k in ks {
                        c.keywords.push((k.as_bytes(), r));
                        let last = *k.as_bytes().last().expect("keywords are not empty");
                        c.word_last[last.to_ascii_lowercase() as usize] = true;
                        c.word_last[last.to_ascii_uppercase() as usize] = true;
                    }
                }
                WordEndThen { suffix, next, back } => {
                    c.word_end_then.push((suffix.as_bytes(), next, back, r));
                    c.end_then_last[*suffix.as_bytes().last().expect("not empty") as usize] = true;
                    c.end_then_next[next as usize] = true;
                }
                AfterByte { prev, prefix } => {
                    c.after_byte.push((prev, prefix.as_bytes(), r));
                    c.after_prev[prev as usize] = true;
                }
                Scheme(a) => c.schemes.push((a, r)),
            }
        }
        for v in &mut c.prefixes {
            v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        c.keywords.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        c
    })
}

/// Rule `r`'s anchored regex (compiled on first use). A leading `\b` is dropped: the
/// scanner picks where a match may start (a word start, after `-`, `.` or `_` inside a word,
/// after an escape), and a `\b` there would refuse `MY_KEY_AKIA…` or `\nAKIA…`.
fn regex(c: &Compiled, r: usize) -> &Regex {
    c.regexes[r].get_or_init(|| {
        let rule = &RULES[r];
        let pattern = rule.pattern.strip_prefix(r"\b").unwrap_or(rule.pattern);
        Regex::builder()
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .unicode(false)
                    .utf8(false),
            )
            .build(pattern)
            .unwrap_or_else(|e| panic!("built-in secret pattern {}: {e}", rule.name))
    })
}

thread_local! {
    /// Each thread's search caches, one per rule (a shared regex's pool would make the scan
    /// threads and the many short decoded stretches contend for it).
    static CACHES: std::cell::RefCell<Vec<Option<regex_automata::meta::Cache>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Rule `r`'s regex on `input`, with this thread's cache.
fn find_anchored(
    c: &Compiled,
    r: usize,
    input: &regex_automata::Input<'_>,
) -> Option<regex_automata::Match> {
    let re = regex(c, r);
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        if caches.len() < RULES.len() {
            caches.resize_with(RULES.len(), || None);
        }
        let cache = caches[r].get_or_insert_with(|| re.create_cache());
        re.search_with(cache, input)
    })
}

/// The rule names (for tests and documentation).
#[cfg(test)]
pub(crate) fn rule_names() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|r| r.name)
}

const fn class_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_';
        c += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// Bytes of a "word" for the secret scan: `[A-Za-z0-9_.-]`.
static WORD: [bool; 256] = class_table(b".-");
/// Bytes of a token for the entropy rule: base64/hex-like `[A-Za-z0-9+/=_-]`.
static TOKEN: [bool; 256] = class_table(b"+/=-");

/// Byte classes of the single scan: bit 0 = word byte, bit 1 = token byte.
pub(crate) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = WORD[c] as u8 | ((TOKEN[c] as u8) << 1);
        c += 1;
    }
    t
};

/// The end of the well-formed placeholder `[SECRET:<rule>#<n>]` starting at `at`, if there
/// is one (`<rule>` one of the rule names). Nothing else that looks like one is excused: a
/// forged `[SECRET:AKIA…]` or `[SECRET:x]hunter2` is scanned like any text.
pub(crate) fn placeholder_at(text: &[u8], at: usize) -> Option<usize> {
    let rest = text.get(at..)?.strip_prefix(PLACEHOLDER_OPEN)?;
    let hash = rest.iter().take(48).position(|&b| b == b'#')?;
    let kind = std::str::from_utf8(&rest[..hash]).ok()?;
    if !RULES.iter().any(|r| r.name == kind) {
        return None;
    }
    let digits = rest[hash + 1..]
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || rest.get(hash + 1 + digits) != Some(&b']') {
        return None;
    }
    Some(at + PLACEHOLDER_OPEN.len() + hash + 1 + digits + 1)
}

/// True when `[s, e)` lies inside a well-formed placeholder.
fn inside_placeholder(text: &[u8], s: usize, e: usize) -> bool {
    let from = s.saturating_sub(80);
    let Some(open) = text[from..s.min(text.len())]
        .iter()
        .rposition(|&b| b == b'[')
    else {
        return false;
    };
    placeholder_at(text, from + open).is_some_and(|end| end >= e)
}

/// The value range inside a match `[s, e)` of `text`.
fn value_range(text: &[u8], s: usize, e: usize, value: Value) -> (usize, usize) {
    let m = &text[s..e];
    let (vs, ve) = match value {
        Value::Whole => (0, m.len()),
        Value::AfterAssign => {
            let eq = m.iter().position(|&b| b == b':' || b == b'=');
            let pct = m
                .windows(3)
                .position(|w| w[0] == b'%' && w[1] == b'3' && matches!(w[2] | 0x20, b'a' | b'd'));
            let vs = match (eq, pct) {
                (Some(a), Some(b)) if b < a => b + 3,
                (Some(a), _) => a + 1,
                (None, Some(b)) => b + 3,
                (None, None) => return (s, e),
            };
            let mut vs = vs;
            while vs < m.len() && matches!(m[vs], b' ' | b'\t' | b'"' | b'\'' | b'\\') {
                vs += 1;
            }
            let mut ve = m.len();
            while ve > vs && matches!(m[ve - 1], b'"' | b'\'' | b'\\') {
                ve -= 1;
            }
            (vs, ve)
        }
        Value::LastWord => {
            let vs = m
                .iter()
                .rposition(|b| b.is_ascii_whitespace())
                .map_or(0, |k| k + 1);
            (vs, m.len())
        }
        Value::UrlPassword => {
            let after = m.windows(3).position(|w| w == b"://").map_or(0, |k| k + 3);
            let at = m.iter().rposition(|&b| b == b'@').unwrap_or(m.len());
            match m[after..at].iter().position(|&b| b == b':') {
                Some(k) => (after + k + 1, at),
                None => (0, m.len()),
            }
        }
    };
    if vs >= ve { (s, e) } else { (s + vs, s + ve) }
}

/// Excuses a high-entropy token (digests, identifiers).
pub(crate) type Benign<'a> = &'a (dyn Fn(&[u8]) -> bool + Sync);
/// Called at the start of every run of word/token bytes: `(text, position, compared_until,
/// spans)`.
pub(crate) type RunHook<'a> = &'a (dyn Fn(&[u8], usize, &mut usize, &mut Vec<Span>) + Sync);

/// What else a scan reports besides the secret rules.
pub(crate) struct Extras<'a> {
    /// Report tokens of at least `min_len` bytes whose entropy is above the threshold and
    /// that the [`Benign`] check does not excuse, as `high_entropy`.
    pub(crate) entropy: Option<(usize, f64, Benign<'a>)>,
    /// Context-echo anchors.
    pub(crate) on_run: Option<RunHook<'a>>,
}

impl Extras<'_> {
    /// Secret rules only.
    pub(crate) const NONE: Extras<'static> = Extras {
        entropy: None,
        on_run: None,
    };
}

/// Secrets (and extras) *starting* in `text[lo..hi]`; matches may extend past `hi`.
/// Unsorted, possibly overlapping. Text written with escapes is also scanned decoded (see
/// [`scan_escaped`]), two levels deep (JSON inside JSON).
pub(crate) fn scan(text: &[u8], lo: usize, hi: usize, extras: &Extras<'_>) -> Vec<Span> {
    scan_depth(text, lo, hi, extras, 2)
}

fn scan_depth(text: &[u8], lo: usize, hi: usize, extras: &Extras<'_>, depth: u8) -> Vec<Span> {
    let mut out = scan_plain(text, lo, hi, extras);
    if depth > 0 {
        scan_escaped(text, lo, hi.min(text.len()), extras, depth, &mut out);
    }
    out
}

/// How far around an encoding escape the decoded stretch reaches (within its line): longer
/// than any bounded secret.
const STRETCH: usize = 2 << 10;
/// The longest stretch decoded at once.
const STRETCH_MAX: usize = 1 << 20;

/// Secrets whose characters are written as escapes: `\u0041KIA…`, `\x41…`, `gh%70_…`, or
/// glued to a character written as one (`caf\u00e9AKIA…`). Around each such escape, the
/// line is decoded (every escape, two levels deep for JSON inside JSON) and scanned again
/// (secret rules and entropy; context echo stays with the raw text), and what is found is
/// mapped back onto the escaped bytes. The common escapes alone (`\n`, `\"`, `%3D`) need no
/// decoding: the plain scan starts words after them and the assignment rules read past them.
fn scan_escaped(
    text: &[u8],
    lo: usize,
    hi: usize,
    extras: &Extras<'_>,
    depth: u8,
    out: &mut Vec<Span>,
) {
    let n = text.len();
    let inner = Extras {
        entropy: extras.entropy,
        on_run: None,
    };
    let mut pos = lo;
    while pos < hi {
        let Some(k) = memchr::memchr2(b'\\', b'%', &text[pos..hi]) else {
            break;
        };
        let at = pos + k;
        if !encodes_a_character(text, at) {
            pos = at + 1;
            continue;
        }
        // The stretch: from the line start (at most STRETCH back) to STRETCH past the last
        // of the escapes that follow each other closely (across lines, so that text full of
        // them is decoded in few large pieces), at most STRETCH_MAX.
        let floor = at.saturating_sub(STRETCH);
        let start = memchr::memrchr(b'\n', &text[floor..at]).map_or(floor, |j| floor + j + 1);
        let cap = n.min(at + STRETCH_MAX);
        let mut end = cap.min(at + STRETCH);
        let mut next = at + 1;
        while let Some(j) = memchr::memchr2(b'\\', b'%', &text[next..end]) {
            let e = next + j;
            if encodes_a_character(text, e) {
                end = cap.min(e + STRETCH);
            }
            next = e + 1;
        }
        let (dec, map) = decode_escapes(&text[start..end]);
        let back = |d: usize| start + map.source(d, dec.len(), end - start);
        for sp in scan_depth(&dec, 0, dec.len(), &inner, depth - 1) {
            out.push(Span {
                start: back(sp.start),
                end: back(sp.end),
                value_start: back(sp.value_start),
                value_end: back(sp.value_end),
                rule: sp.rule,
            });
        }
        pos = end.max(at + 1);
    }
}

/// True at an escape that writes, by its code (`\uHHHH`, `\xHH`, `%HH`), a character that
/// can be part of a secret or of its syntax: a word byte, `@` (credentials in a URL), a
/// quote, a space or a line break. Other punctuation (`%2F`, `%3A`, `%3D`, `\u00e9`, ...)
/// only separates words, which the plain scan already handles (see [`escape_skip`]).
fn encodes_a_character(text: &[u8], at: usize) -> bool {
    let code = match (text[at], text.get(at + 1)) {
        (b'%', _) => hex_at(text, at + 1, 2),
        (b'\\', Some(b'x')) => hex_at(text, at + 2, 2),
        (b'\\', Some(b'u')) => hex_at(text, at + 2, 4),
        _ => None,
    };
    code.is_some_and(|c| {
        u8::try_from(c).is_ok_and(|b| {
            WORD[b as usize] || matches!(b, b'@' | b'"' | b'\'' | b' ' | b'\n' | b'\t')
        })
    })
}

/// How many bytes of the word at `ws..i` belong to an escape before it: 1 after a backslash
/// (`\n`, `\t`, ...), 2 after `%` (`%3D`), else 0.
fn escape_skip(text: &[u8], ws: usize, i: usize) -> usize {
    match text[ws - 1] {
        // Any run of backslashes: `\\n` is `\n` once JSON inside JSON is decoded.
        b'\\' => {
            let letter = matches!(text[ws], b'n' | b't' | b'r' | b'b' | b'f' | b'v');
            usize::from(letter && i - ws > 1)
        }
        b'%' if i - ws > 2 && hex_at(text, ws, 2).is_some() => 2,
        _ => 0,
    }
    .max(code_escape_skip(text, ws, i))
}

/// 5 after `\` at a word `uHHHH…`, 3 at `xHH…` (a character written by its code, glued to
/// what follows: `caf\u00e9AKIA…`), else 0.
fn code_escape_skip(text: &[u8], ws: usize, i: usize) -> usize {
    if text[ws - 1] != b'\\' {
        return 0;
    }
    match text[ws] {
        b'u' if i - ws > 5 && hex_at(text, ws + 1, 4).is_some() => 5,
        b'x' if i - ws > 3 && hex_at(text, ws + 1, 2).is_some() => 3,
        _ => 0,
    }
}

fn hex_at(text: &[u8], at: usize, digits: usize) -> Option<u32> {
    let h = text.get(at..at + digits)?;
    let mut v = 0u32;
    for &b in h {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = v << 4 | u32::from(d);
    }
    Some(v)
}

/// The length of the escape at `at` (`\n`, `\"`, `\xHH`, `\uHHHH`, `%HH`, ...), if there is
/// one.
fn escape_len(text: &[u8], at: usize) -> Option<usize> {
    match (text[at], text.get(at + 1)?) {
        (b'%', _) => hex_at(text, at + 1, 2).map(|_| 3),
        (b'\\', b'n' | b't' | b'r' | b'b' | b'f' | b'v' | b'0' | b'"' | b'\'' | b'\\' | b'/') => {
            Some(2)
        }
        (b'\\', b'x') => hex_at(text, at + 2, 2).map(|_| 4),
        (b'\\', b'u') => hex_at(text, at + 2, 4).map(|_| 6),
        _ => None,
    }
}

/// Where decoded bytes came from: breakpoints `(decoded offset, source offset, escape)`; a
/// byte of an escape maps to the escape's start, others follow their breakpoint linearly.
struct DecodeMap(Vec<(u32, u32, bool)>);

impl DecodeMap {
    /// The source offset of decoded offset `d` (`src_len` at or past the end).
    fn source(&self, d: usize, dec_len: usize, src_len: usize) -> usize {
        if d >= dec_len {
            return src_len;
        }
        let k = self.0.partition_point(|&(bd, _, _)| bd as usize <= d);
        match k.checked_sub(1).map(|k| self.0[k]) {
            None => d,
            Some((_, bs, true)) => bs as usize,
            Some((bd, bs, false)) => bs as usize + (d - bd as usize),
        }
    }
}

/// `src` with its escapes decoded (`\uHHHH` becomes UTF-8; a surrogate pair one character; a
/// lone surrogate U+FFFD), and where each decoded byte came from.
fn decode_escapes(src: &[u8]) -> (Vec<u8>, DecodeMap) {
    let mut out = Vec::with_capacity(src.len());
    let mut map = Vec::new();
    let mut i = 0;
    while i < src.len() {
        // Plain bytes up to the next possible escape, copied at once.
        let run = memchr::memchr2(b'\\', b'%', &src[i..]).map_or(src.len(), |k| i + k);
        if run > i {
            map.push((out.len() as u32, i as u32, false));
            out.extend_from_slice(&src[i..run]);
            i = run;
            continue;
        }
        let Some(len) = escape_len(src, i) else {
            map.push((out.len() as u32, i as u32, false));
            out.push(src[i]);
            i += 1;
            continue;
        };
        let mut used = len;
        let mut utf8 = [0u8; 4];
        let bytes: &[u8] = match (src[i], src[i + 1]) {
            (b'%', _) | (b'\\', b'x') => {
                utf8[0] = hex_at(src, i + len - 2, 2).unwrap_or(0) as u8;
                &utf8[..1]
            }
            (_, b'u') => {
                let unit = hex_at(src, i + 2, 4).unwrap_or(0xfffd);
                let ch = if (0xd800..0xdc00).contains(&unit)
                    && src.get(i + 6..i + 8) == Some(b"\\u")
                    && let Some(low @ 0xdc00..0xe000) = hex_at(src, i + 8, 4)
                {
                    used = 12;
                    char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                } else {
                    char::from_u32(unit)
                };
                ch.unwrap_or('\u{fffd}').encode_utf8(&mut utf8).as_bytes()
            }
            (_, c) => {
                utf8[0] = match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'b' => 8,
                    b'f' => 12,
                    b'v' => 11,
                    b'0' => 0,
                    other => other,
                };
                &utf8[..1]
            }
        };
        map.push((out.len() as u32, i as u32, true));
        out.extend_from_slice(bytes);
        i += used;
    }
    (out, DecodeMap(map))
}

fn scan_plain(text: &[u8], lo: usize, hi: usize, extras: &Extras<'_>) -> Vec<Span> {
    use regex_automata::{Anchored, Input};
    let c = compiled();
    let n = text.len();
    let hi = hi.min(n);
    let mut out: Vec<Span> = Vec::new();
    let try_rule = |r: usize, at: usize, out: &mut Vec<Span>| -> bool {
        let input = Input::new(text).span(at..n).anchored(Anchored::Yes);
        let Some(m) = find_anchored(c, r, &input) else {
            return false;
        };
        let rule = &RULES[r];
        if rule.check.is_some_and(|f| !f(&text[m.start()..m.end()])) {
            return false;
        }
        let (vs, ve) = value_range(text, m.start(), m.end(), rule.value);
        if placeholder_at(text, vs) == Some(ve) || inside_placeholder(text, m.start(), m.end()) {
            // Already masked.
            return false;
        }
        out.push(Span {
            start: m.start(),
            end: m.end(),
            value_start: vs,
            value_end: ve,
            rule: rule.name,
        });
        true
    };
    // A keyword rule needs `:` or `=` after the word, past quotes, backslashes and any
    // alignment (`password          = "…"`).
    let assign_follows = |i: usize| {
        let rest = &text[i..n.min(i + 64)];
        match rest
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b'"' | b'\'' | b'\\'))
        {
            Some(k) => match rest[k] {
                b':' | b'=' => true,
                b'%' => {
                    rest.get(k + 1) == Some(&b'3')
                        && rest
                            .get(k + 2)
                            .is_some_and(|&c| matches!(c | 0x20, b'a' | b'd'))
                }
                _ => false,
            },
            None => false,
        }
    };
    let on_word = |ws: usize, i: usize, out: &mut Vec<Span>| {
        let len = i - ws;
        let first = text[ws] as usize;
        let last = text[i - 1] as usize;
        let next = text.get(i).copied().unwrap_or(0);
        let prev = if ws > 0 { text[ws - 1] } else { 0 };
        // What can fire for this word, decided with table lookups first: most words are
        // short, start and end with ordinary letters, and are followed by a space.
        let keyword = c.word_last[last] && assign_follows(i);
        let end_then = c.end_then_next[next as usize] && c.end_then_last[last];
        let after = c.after_prev[prev as usize];
        let scheme = next == b':' && text[i..].starts_with(b"://");
        let long = len >= MIN_PREFIX_WORD;
        let starts = c.word_start_first[first];
        // A key block glued to what precedes it (`x-----BEGIN …`): the word ends the marker.
        let glued_block = len > 10 && (last == b'N' as usize || last == b'n' as usize);
        // A word glued to an escape (`\nAKIA…`, `%3Dghp_…`) also starts after it.
        let skip = if prev == b'\\' || prev == b'%' {
            escape_skip(text, ws, i)
        } else {
            0
        };
        if !(long || starts || keyword || end_then || after || scheme || glued_block || skip > 0) {
            return;
        }
        let word = &text[ws..i];
        if skip > 0 {
            let at = ws + skip;
            if i - at >= MIN_PREFIX_WORD {
                for &(pre, r) in &c.prefixes[text[at] as usize] {
                    if text[at..i].starts_with(pre) && try_rule(r, at, out) {
                        break;
                    }
                }
            }
            for &(w, r) in &c.word_starts[text[at].to_ascii_lowercase() as usize] {
                if i - at >= w.len() && text[at..at + w.len()].eq_ignore_ascii_case(w) {
                    try_rule(r, at, out);
                }
            }
        }
        if glued_block && let Some(k) = memchr::memmem::find(&word[1..], b"-----") {
            let at = ws + 1 + k;
            for &(w, r) in &c.word_starts[b'-' as usize] {
                if i - at >= w.len() && text[at..at + w.len()].eq_ignore_ascii_case(w) {
                    try_rule(r, at, out);
                }
            }
        }
        if long {
            // Candidate starts: the word start, and positions after '-', '.' or '_' inside
            // it (`MY_TOKEN_ghp_…`, `SIE-glpat-…`).
            let mut p = ws;
            loop {
                for &(pre, r) in &c.prefixes[text[p] as usize] {
                    if text[p..i].starts_with(pre) && try_rule(r, p, out) {
                        break;
                    }
                }
                match memchr::memchr3(b'-', b'.', b'_', &text[p..i]) {
                    Some(k) if p + k + 1 < i => p = p + k + 1,
                    _ => break,
                }
            }
        }
        if starts {
            for &(w, r) in &c.word_starts[word[0].to_ascii_lowercase() as usize] {
                if word.len() >= w.len() && word[..w.len()].eq_ignore_ascii_case(w) {
                    try_rule(r, ws, out);
                }
            }
        }
        if keyword {
            for &(k, r) in &c.keywords {
                if word.len() >= k.len()
                    && word[word.len() - k.len()..].eq_ignore_ascii_case(k)
                    && try_rule(r, i - k.len(), out)
                {
                    break;
                }
            }
        }
        if end_then {
            for &(suffix, nb, back, r) in &c.word_end_then {
                if next == nb && word.ends_with(suffix) && len >= back {
                    try_rule(r, i - back, out);
                }
            }
        }
        if after {
            for &(pb, pre, r) in &c.after_byte {
                if prev == pb && word.starts_with(pre) {
                    try_rule(r, ws - 1, out);
                }
            }
        }
        // A URL scheme: `scheme://` (the scheme may hold `+`, which splits words).
        if scheme {
            let floor = i.saturating_sub(21);
            let mut s = i;
            while s > floor
                && matches!(text[s - 1], b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'.' | b'-')
            {
                s -= 1;
            }
            while s < i && !text[s].is_ascii_alphabetic() {
                s += 1;
            }
            let after = (i + 3).min(n);
            let limit = n.min(after + 300);
            let auth_end = text[after..limit]
                .iter()
                .position(|&b| b == b'/' || b.is_ascii_whitespace())
                .map_or(limit, |k| after + k);
            let authority = &text[after..auth_end];
            for &(a, r) in &c.schemes {
                if a.admits(authority) {
                    try_rule(r, s, out);
                }
            }
        }
    };
    let on_token = |ts: usize, te: usize, out: &mut Vec<Span>| {
        if let Some((min_len, threshold, benign)) = extras.entropy {
            let tok = &text[ts..te];
            if tok.len() >= min_len && shannon_entropy(tok) > threshold && !benign(tok) {
                out.push(Span::whole(ts, te, "high_entropy"));
            }
        }
    };
    let mut compared_until = 0usize;
    let mut i = lo;
    while i < hi {
        if CLASS[text[i] as usize] == 0 {
            i += 1;
            continue;
        }
        let rs = i;
        let mut all = 3u8;
        while i < n {
            let k = CLASS[text[i] as usize];
            if k == 0 {
                break;
            }
            all &= k;
            i += 1;
        }
        if let Some(hook) = extras.on_run {
            hook(text, rs, &mut compared_until, &mut out);
        }
        if all == 3 {
            // The common case: the run is one word and one token.
            on_word(rs, i, &mut out);
            on_token(rs, i, &mut out);
        } else {
            for (bit, is_word) in [(1u8, true), (2u8, false)] {
                let mut j = rs;
                while j < i {
                    if CLASS[text[j] as usize] & bit == 0 {
                        j += 1;
                        continue;
                    }
                    let s = j;
                    while j < i && CLASS[text[j] as usize] & bit != 0 {
                        j += 1;
                    }
                    if is_word {
                        on_word(s, j, &mut out);
                    } else {
                        on_token(s, j, &mut out);
                    }
                }
            }
        }
    }
    out
}

/// Shannon entropy in bits per byte.
pub(crate) fn shannon_entropy(b: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in b {
        counts[c as usize] += 1;
    }
    let n = b.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// `text` is cut into at most `parts` pieces at whitespace bytes (no word or token spans a
/// cut), for scanning on several threads.
pub(crate) fn cut_points(text: &[u8], parts: usize) -> Vec<usize> {
    let n = text.len();
    let mut cuts = vec![0];
    for k in 1..parts {
        let at = n * k / parts;
        let Some(off) = text[at..]
            .iter()
            .take(64 << 10)
            .position(|b| b.is_ascii_whitespace())
        else {
            continue;
        };
        let cut = at + off;
        if cut > *cuts.last().expect("starts with 0") {
            cuts.push(cut);
        }
    }
    cuts.push(n);
    cuts
}

/// Every secret in `text` (secret rules only), sorted, scanned on up to `threads` threads;
/// overlapping matches are merged, keeping the first rule's name.
pub(crate) fn find_secrets(text: &[u8], threads: usize) -> Vec<Span> {
    let cuts = cut_points(text, threads.max(1));
    let mut spans: Vec<Span> = if cuts.len() <= 2 {
        scan(text, 0, text.len(), &Extras::NONE)
    } else {
        std::thread::scope(|sc| {
            let handles: Vec<_> = cuts
                .windows(2)
                .skip(1)
                .map(|w| {
                    let (lo, hi) = (w[0], w[1]);
                    sc.spawn(move || scan(text, lo, hi, &Extras::NONE))
                })
                .collect();
            let mut v = scan(text, cuts[0], cuts[1], &Extras::NONE);
            for h in handles {
                v.extend(h.join().expect("secret scan thread panicked"));
            }
            v
        })
    };
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start < last.end => {
                last.end = last.end.max(s.end);
                last.value_start = last.value_start.min(s.value_start);
                last.value_end = last.value_end.max(s.value_end);
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (text, rule, the secret value inside it).
    pub(crate) const SAMPLES: &[(&str, &str, &str)] = &[
        (
            r#"{"auths":{"r.example":{"auth":"dXNlcjpzdXBlcnNlY3JldA=="}}}"#,
            "docker_config_auth",
            "dXNlcjpzdXBlcnNlY3JldA==",
        ),
        (
            "machine api.example.com login bob password s3cr3tP4ssw0rd",
            "netrc_password",
            "s3cr3tP4ssw0rd",
        ),
        (
            "AKIAIOSFODNN7EXAMPLE",
            "aws_access_key_id",
            "AKIAIOSFODNN7EXAMPLE",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB",
            "github_token",
            "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB",
        ),
        (
            "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "digitalocean_token",
            "dop_v1_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        (
            "shpat_0123456789abcdef0123456789abcdef",
            "shopify_token",
            "shpat_0123456789abcdef0123456789abcdef",
        ),
        (
            "shpss_0123456789abcdef0123456789abcdef",
            "shopify_token",
            "shpss_0123456789abcdef0123456789abcdef",
        ),
        (
            "bot 123456789:AAFAKEfake0123456789_-FAKEfake01234",
            "telegram_bot_token",
            ":AAFAKEfake0123456789_-FAKEfake01234",
        ),
        (
            "postgres://admin:hunter2pass@db.internal:5432/app",
            "url_credentials",
            "hunter2pass",
        ),
        (
            "mongodb+srv://app:s3cr3tPw@cluster0.example.net/db",
            "url_credentials",
            "s3cr3tPw",
        ),
        (
            "Authorization: Bearer abcdefghijklmnop0123456789",
            "bearer_token",
            "abcdefghijklmnop0123456789",
        ),
        (
            "Authorization: Basic RkFLRTpGQUtFMDEyMzQ1Njc4OQ==",
            "basic_auth",
            "RkFLRTpGQUtFMDEyMzQ1Njc4OQ==",
        ),
        (
            "password=correcthorsebattery",
            "secret_assignment",
            "correcthorsebattery",
        ),
        (
            "API_KEY: \"abc123def456\"",
            "secret_assignment",
            "abc123def456",
        ),
        (
            "SECRET_KEY = 'django-insecure-0123456789'",
            "secret_assignment",
            "django-insecure-0123456789",
        ),
        (
            "\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
            "secret_assignment",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "xoxe-1-FAKEfake0123456789",
            "slack_token",
            "xoxe-1-FAKEfake0123456789",
        ),
        (
            "sk_live_abcdefghijklmnop1234",
            "stripe_key",
            "sk_live_abcdefghijklmnop1234",
        ),
        (
            "hvs.CAESIFAKE0123456789abcdef_-CAESIFAKE",
            "vault_token",
            "hvs.CAESIFAKE0123456789abcdef_-CAESIFAKE",
        ),
        (
            "a1b2Q~FAKEfake0123456789_.FAKEfake012345",
            "azure_ad_client_secret",
            "a1b2Q~FAKEfake0123456789_.FAKEfake012345",
        ),
        (
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
            "npm_token",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
        (
            "glpat-abcdefghij0123456789",
            "gitlab_token",
            "glpat-abcdefghij0123456789",
        ),
        (
            "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE",
            "age_secret_key",
            "AGE-SECRET-KEY-1QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQPZRY9X8GF2TVDW0S3JN54KHCE",
        ),
        (
            "gsk_AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789AbCd",
            "ai_provider_key",
            "gsk_AbCdEf0123456789AbCdEf0123456789AbCdEf0123456789AbCd",
        ),
    ];

    #[test]
    fn samples_are_found_with_their_values() {
        for (text, rule, value) in SAMPLES {
            let input = format!("before {text} after");
            let spans = find_secrets(input.as_bytes(), 1);
            assert_eq!(spans.len(), 1, "{rule}: {spans:?}");
            let s = spans[0];
            assert_eq!(s.rule, *rule, "{text}");
            assert_eq!(&input[s.value_start..s.value_end], *value, "{rule}");
        }
    }

    #[test]
    fn placeholders_and_benign_words_are_not_secrets() {
        for benign in [
            "password = [SECRET:secret_assignment#1]",
            "uses sk-learn-compatible-estimators",
            "the bearer of bad news",
            "Mississippi.riverbanks.abcdefghijklmnopqrstuvwxyzabc",
            "https://example.com/path?q=1",
        ] {
            assert!(find_secrets(benign.as_bytes(), 1).is_empty(), "{benign}");
        }
    }

    /// Secrets written with escapes or glued by them are found, and the masked range is the
    /// escaped secret: what stays around it is exactly the text around the secret.
    #[test]
    fn escaped_and_glued_secrets_are_found() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let gh = "ghp_1234567890abcdefghijklmnopqrstuvwxyzAB";
        for (text, rule, value) in [
            (
                r#"{"log":"started\nAKIAIOSFODNN7EXAMPLE rest"}"#,
                "aws_access_key_id",
                key,
            ),
            (
                r#"{"log":"tok\tghp_1234567890abcdefghijklmnopqrstuvwxyzAB"}"#,
                "github_token",
                gh,
            ),
            (
                r#"{"k":"\u0041KIAIOSFODNN7EXAMPLE"}"#,
                "aws_access_key_id",
                r"\u0041KIAIOSFODNN7EXAMPLE",
            ),
            (
                r#"{"k":"\x41KIAIOSFODNN7EXAMPLE"}"#,
                "aws_access_key_id",
                r"\x41KIAIOSFODNN7EXAMPLE",
            ),
            (
                "q=a%3Dghp_1234567890abcdefghijklmnopqrstuvwxyzAB&b=1",
                "github_token",
                gh,
            ),
            ("MY_KEY_AKIAIOSFODNN7EXAMPLE", "aws_access_key_id", key),
            (
                r#"{"m":"{\"password\":\"hunter2hunter2\"}"}"#,
                "secret_assignment",
                "hunter2hunter2",
            ),
            (
                r#""{\\\"password\\\":\\\"hunter2hunter2\\\"}""#,
                "secret_assignment",
                "hunter2hunter2",
            ),
            (
                "  password          = \"hunter2hunter2\"",
                "secret_assignment",
                "hunter2hunter2",
            ),
            (
                "token%3Dsupersecretvalue123",
                "secret_assignment",
                "supersecretvalue123",
            ),
        ] {
            let spans = find_secrets(text.as_bytes(), 1);
            let found: Vec<(&str, &str)> = spans
                .iter()
                .map(|s| (s.rule, &text[s.value_start..s.value_end]))
                .collect();
            assert!(found.contains(&(rule, value)), "{text}: {found:?}");
        }
        // A key block in a JSON string, glued to `\n` (and to a letter).
        let pem = "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----";
        for text in [
            format!(r#"{{"k":"chain\n{pem}\n"}}"#),
            format!("x{}", pem.replace("\\n", "\n")),
        ] {
            let spans = find_secrets(text.as_bytes(), 1);
            assert!(
                spans.iter().any(|s| s.rule == "private_key"
                    && text[s.value_start..s.value_end].contains("MIIEvQIB")),
                "{text}: {spans:?}"
            );
        }
    }

    /// Only real placeholders are excused: anything else that starts like one is scanned.
    #[test]
    fn forged_placeholders_are_scanned() {
        for text in [
            "[SECRET:AKIAIOSFODNN7EXAMPLE]",
            "[SECRET:aws_access_key_id#1 AKIAIOSFODNN7EXAMPLE]",
            "password=[SECRET:x]hunter2hunter2",
            "password=[SECRET:secret_assignment#1]hunter2hunter2",
        ] {
            assert!(!find_secrets(text.as_bytes(), 1).is_empty(), "{text}");
        }
        assert_eq!(placeholder_at(b"[SECRET:github_token#12]", 0), Some(24));
        assert_eq!(placeholder_at(b"[SECRET:nope#1]", 0), None);
    }

    proptest::proptest! {
        /// A secret inside a string, JSON-encoded once or twice, or URL-encoded: always found.
        #[test]
        fn json_encoded_secrets_are_found(
            pre in "[a-zA-Z \n\t\"\\\\]{0,40}",
            post in "[a-zA-Z \n\t\"\\\\]{0,40}",
            how in 0..3u8,
            idx in 0..SAMPLES.len(),
        ) {
            let (secret, rule, _) = SAMPLES[idx];
            let raw = format!("{pre}\n{secret}\n{post}");
            let mut enc = serde_json::to_string(&raw).unwrap();
            match how {
                1 => enc = serde_json::to_string(&enc).unwrap(),
                // URL-encoded (every byte but the unreserved ones), in a JSON string.
                2 => {
                    let pct: String = raw
                        .bytes()
                        .map(|b| {
                            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                                (b as char).to_string()
                            } else {
                                format!("%{b:02X}")
                            }
                        })
                        .collect();
                    enc = serde_json::to_string(&pct).unwrap();
                }
                _ => {}
            }
            let text = format!("{{\"log\": {enc}}}");
            let spans = find_secrets(text.as_bytes(), 1);
            proptest::prop_assert!(spans.iter().any(|s| s.rule == rule), "{text}: {spans:?}");
        }
    }

    #[test]
    fn rule_names_are_unique_and_patterns_compile() {
        let mut names: Vec<&str> = rule_names().collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(compiled().regexes.len(), n);
        for r in 0..n {
            let _ = regex(compiled(), r);
        }
    }

    #[test]
    fn threads_find_the_same_as_one() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!("line {i} token=abcdef{i:06} ghp_{:036}\n", i));
        }
        let one = find_secrets(text.as_bytes(), 1);
        assert_eq!(one, find_secrets(text.as_bytes(), 4));
        assert_eq!(one.len(), 10_000);
    }
}
