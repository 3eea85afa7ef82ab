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
    Scheme,
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
        r#"\b(?i:aws_?secret(?:_?access)?_?key)["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}"#,
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
        Scheme,
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]+",
    ),
    rule(
        "teams_webhook",
        Scheme,
        r"https://[A-Za-z0-9\-]+\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/_\-]{60,}",
    ),
    rule(
        "discord_webhook",
        Scheme,
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
        Scheme,
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
        r#"(?i:authorization)["']?\s*[:=]\s*["']?(?i:basic)\s+[A-Za-z0-9+/]{8,}={0,2}"#,
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
        r#"(?i:password|passwd|pwd|passphrase|secret|api[_\-]?key|token|credentials?|(?:secret|private|access|secret_?access|app|account|master|signing|encryption|license|client)_?key)["']?\s*[:=]\s*["']?[^\s"',;]{6,}"#,
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
    schemes: Vec<usize>,
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
                Scheme => c.schemes.push(r),
            }
        }
        for v in &mut c.prefixes {
            v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        c.keywords.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        c
    })
}

/// Rule `r`'s anchored regex (compiled on first use).
fn regex(c: &Compiled, r: usize) -> &Regex {
    c.regexes[r].get_or_init(|| {
        Regex::builder()
            .syntax(
                regex_automata::util::syntax::Config::new()
                    .unicode(false)
                    .utf8(false),
            )
            .build(RULES[r].pattern)
            .unwrap_or_else(|e| panic!("built-in secret pattern {}: {e}", RULES[r].name))
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

/// True when `pos` lies inside a `[SECRET:kind#n]` placeholder.
fn inside_placeholder(text: &[u8], pos: usize) -> bool {
    let from = pos.saturating_sub(64);
    let Some(open) = text[from..pos].iter().rposition(|&b| b == b'[') else {
        return false;
    };
    let open = from + open;
    text[open..].starts_with(PLACEHOLDER_OPEN)
        && text[open..]
            .iter()
            .take(96)
            .position(|&b| b == b']')
            .is_some_and(|close| open + close >= pos)
}

/// The value range inside a match `[s, e)` of `text`.
fn value_range(text: &[u8], s: usize, e: usize, value: Value) -> (usize, usize) {
    let m = &text[s..e];
    let (vs, ve) = match value {
        Value::Whole => (0, m.len()),
        Value::AfterAssign => {
            let Some(k) = m.iter().position(|&b| b == b':' || b == b'=') else {
                return (s, e);
            };
            let mut vs = k + 1;
            while vs < m.len() && matches!(m[vs], b' ' | b'\t' | b'"' | b'\'') {
                vs += 1;
            }
            let mut ve = m.len();
            while ve > vs && matches!(m[ve - 1], b'"' | b'\'') {
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
/// Unsorted, possibly overlapping.
pub(crate) fn scan(text: &[u8], lo: usize, hi: usize, extras: &Extras<'_>) -> Vec<Span> {
    use regex_automata::{Anchored, Input};
    let c = compiled();
    let n = text.len();
    let hi = hi.min(n);
    let mut out: Vec<Span> = Vec::new();
    let try_rule = |r: usize, at: usize, out: &mut Vec<Span>| -> bool {
        let input = Input::new(text).span(at..n).anchored(Anchored::Yes);
        let Some(m) = regex(c, r).find(input) else {
            return false;
        };
        let rule = &RULES[r];
        if rule.check.is_some_and(|f| !f(&text[m.start()..m.end()])) {
            return false;
        }
        let (vs, ve) = value_range(text, m.start(), m.end(), rule.value);
        if text[vs..].starts_with(PLACEHOLDER_OPEN) || inside_placeholder(text, m.start()) {
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
    // A keyword rule needs `:` or `=` within four bytes after the word.
    let assign_follows = |i: usize| {
        text[i..n.min(i + 4)]
            .iter()
            .any(|&b| b == b':' || b == b'=')
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
        if !(long || starts || keyword || end_then || after || scheme) {
            return;
        }
        let word = &text[ws..i];
        if long {
            // Candidate starts: the word start, and positions after '-' or '.' inside it.
            let mut p = ws;
            loop {
                for &(pre, r) in &c.prefixes[text[p] as usize] {
                    if text[p..i].starts_with(pre) && try_rule(r, p, out) {
                        break;
                    }
                }
                match memchr::memchr2(b'-', b'.', &text[p..i]) {
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
            for &r in &c.schemes {
                try_rule(r, s, out);
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
