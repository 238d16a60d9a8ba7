//! Every conversion between the wire types and the domain, in one place, so the domain modules
//! know nothing of the wire. A request becomes domain values through `TryFrom`, or a named
//! function when the domain value needs more than the body (a rollout also needs its app,
//! release and channel: [`RolloutSpec::into_rollout`]); these check what the types alone
//! cannot. A domain value becomes an answer through `From`.
//!
//! [`Rule`] is the one composite domain value that wire types hold as it is: its JSON form is a
//! [`RuleSpec`], converted while the body is parsed (the `Serialize` and `Deserialize` impls
//! below), so a bad rule is refused like any other malformed field, with serde's location.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    ArtifactSpec, CheckRequest, ClientSignaturesSpec, CompareSpec, EvidenceView, ExplainResponse, GateSpec,
    KeyDocumentSpec, KeySpec, LastLookTakenView, LastLookView, MetricEvidenceView, MetricFiguresView, MetricGateSpec,
    MetricKindSpec, MetricSpec, PatchSpec, Reason, ReleaseSpec, ReleaseVerdict, RolloutPatch, RolloutSpec, RuleKind,
    RuleSpec, ScheduleSpec, SignatureSpec, TraitOp,
};
use crate::error::{ParseError, What};
use crate::rules::parse_network;
use crate::{
    Admission, AppId, Arch, Artifact, Blob, Call, ChannelName, CheckIn, CheckKind, ClientSignatures, Comparison,
    CounterFigures, Distribution, Evidence, ExhaustedStep, Explanation, HealthGate, IdList, KeyDocument, KeyId,
    KeySignature, LastLook, Locale, MAX_RULE_VALUES, Measure, MetricEvidence, MetricGate, MetricKind, MetricSet,
    Minisign, Os, Patch, Patches, Percent, Platform, Release, ReleaseParts, Rollout, RolloutEdit, Rule, Rules, Salt,
    Schedule, Sha512, Signature, Signatures, SignedKeyDocument, Target, Threshold, TraitCondition, TraitValue,
    TrustedKeys, Verdict, Version, metric_gate_defaults,
};

// ---------- app metrics ----------

/// An app's declared metrics from the wire: a value names the direction that is better, a
/// counter does not.
pub fn metric_set(specs: &[MetricSpec]) -> Result<MetricSet, ParseError> {
    let declared = specs.iter().map(|m| {
        let kind = match (m.kind, m.better) {
            (MetricKindSpec::Value, Some(better)) => MetricKind::Value(better),
            (MetricKindSpec::Counter, None) => MetricKind::Counter,
            (MetricKindSpec::Value, None) => {
                return Err(ParseError::new(
                    What::MetricSet,
                    m.name.as_str(),
                    "a value metric needs better: lower or higher",
                ));
            }
            (MetricKindSpec::Counter, Some(_)) => {
                return Err(ParseError::new(What::MetricSet, m.name.as_str(), "a counter has no better direction"));
            }
        };
        Ok((m.name.clone(), kind))
    });
    MetricSet::new(declared.collect::<Result<Vec<_>, _>>()?)
}

/// An app's declared metrics on the wire, by name.
pub fn metric_specs(set: &MetricSet) -> Vec<MetricSpec> {
    set.iter()
        .map(|(name, kind)| match kind {
            MetricKind::Value(better) => {
                MetricSpec { name: name.clone(), kind: MetricKindSpec::Value, better: Some(better) }
            }
            MetricKind::Counter => MetricSpec { name: name.clone(), kind: MetricKindSpec::Counter, better: None },
        })
        .collect()
}

// ---------- device side ----------

impl CheckRequest {
    /// The domain check-in, with the client IP the server determined.
    pub fn into_checkin(self, ip: Option<IpAddr>) -> CheckIn {
        CheckIn {
            device_id: self.device_id,
            user_id: self.user_id,
            current_version: self.current_version,
            channel: self.channel,
            platform: Platform { target: Target { os: self.os, arch: self.arch }, os_version: self.os_version },
            locale: self.locale,
            traits: self.traits,
            ip,
            kind: if self.interactive { CheckKind::Interactive } else { CheckKind::Background },
        }
    }
}

// ---------- releases ----------

impl TryFrom<ReleaseSpec> for Release {
    type Error = ParseError;
    fn try_from(w: ReleaseSpec) -> Result<Self, ParseError> {
        let mut artifacts = BTreeMap::new();
        for a in w.artifacts {
            let target = Target { os: a.os, arch: a.arch };
            let signatures = signatures(a.key_id, a.signature, a.signatures)?;
            let clients = a.clients.map(ClientSignatures::try_from).transpose()?;
            let result = Blob { sha256: a.sha256, size: a.size };
            let patches = a.patches.into_iter().map(Patch::try_from).collect::<Result<_, _>>()?;
            let patches = Patches::new(patches, &result)?;
            let artifact = Artifact { sha256: a.sha256, size: a.size, signatures, url: a.url, clients, patches };
            if artifacts.insert(target.clone(), artifact).is_some() {
                return Err(ParseError::new(
                    What::Release,
                    &w.version.to_string(),
                    format!("two artifacts for {target}"),
                ));
            }
        }
        Release::new(ReleaseParts {
            version: w.version,
            notes: w.notes,
            critical: w.critical,
            min_from_version: w.min_from_version,
            rebuild_of: w.rebuild_of,
            artifacts,
        })
    }
}

impl From<&Release> for ReleaseSpec {
    fn from(r: &Release) -> Self {
        ReleaseSpec {
            version: r.version().clone(),
            notes: r.notes().to_owned(),
            critical: r.is_critical(),
            min_from_version: r.min_from_version().cloned(),
            rebuild_of: r.rebuild_of().cloned(),
            artifacts: r
                .artifacts()
                .iter()
                .map(|(t, a)| ArtifactSpec {
                    os: t.os.clone(),
                    arch: t.arch.clone(),
                    sha256: a.sha256,
                    size: a.size,
                    signature: a.signatures.first().signature,
                    key_id: a.signatures.first().key_id.clone(),
                    signatures: extra_signatures(&a.signatures),
                    url: a.url.clone(),
                    clients: a.clients.as_ref().map(ClientSignaturesSpec::from),
                    patches: a.patches.iter().map(PatchSpec::from).collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<PatchSpec> for Patch {
    type Error = ParseError;
    fn try_from(w: PatchSpec) -> Result<Self, ParseError> {
        Ok(Patch {
            format: w.format,
            base: Blob { sha256: w.base_sha256, size: w.base_size },
            file: Blob { sha256: w.sha256, size: w.size },
            signatures: signatures(w.key_id, w.signature, w.signatures)?,
        })
    }
}

impl From<&Patch> for PatchSpec {
    fn from(p: &Patch) -> Self {
        PatchSpec {
            format: p.format,
            base_sha256: p.base.sha256,
            base_size: p.base.size,
            sha256: p.file.sha256,
            size: p.file.size,
            signature: p.signatures.first().signature,
            key_id: p.signatures.first().key_id.clone(),
            signatures: extra_signatures(&p.signatures),
        }
    }
}

// ---------- key documents and signatures ----------

impl TryFrom<ClientSignaturesSpec> for ClientSignatures {
    type Error = ParseError;
    fn try_from(w: ClientSignaturesSpec) -> Result<Self, ParseError> {
        use base64::Engine as _;
        let ed = base64::engine::general_purpose::STANDARD
            .decode(&w.ed_signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| ParseError::new(What::Signature, &w.ed_signature, "expected 64 bytes in standard base64"))?;
        Ok(ClientSignatures {
            key_id: w.key_id,
            sha512: Sha512::parse(&w.sha512)?,
            minisign: Minisign::parse(&w.minisign)?,
            ed_signature: Signature::from_bytes(ed),
        })
    }
}

impl From<&ClientSignatures> for ClientSignaturesSpec {
    fn from(c: &ClientSignatures) -> Self {
        use base64::Engine as _;
        ClientSignaturesSpec {
            key_id: c.key_id.clone(),
            sha512: c.sha512.to_string(),
            minisign: c.minisign.to_string(),
            ed_signature: base64::engine::general_purpose::STANDARD.encode(c.ed_signature.to_bytes()),
        }
    }
}

/// An artifact's signatures from its wire fields (the compatibility rule of [`ArtifactSpec`]
/// and [`super::ArtifactOffer`]): `key_id` and `signature` first, then each entry of `more`
/// that is not the same signature again.
pub fn signatures(key_id: KeyId, signature: Signature, more: Vec<SignatureSpec>) -> Result<Signatures, ParseError> {
    let first = KeySignature { key_id, signature };
    let mut list = vec![first.clone()];
    list.extend(more.into_iter().map(KeySignature::from).filter(|s| *s != first));
    Signatures::new(list)
}

/// The `signatures` wire field for `list`: every signature when there are several, empty (and
/// omitted from the JSON) when there is one, so single-signature answers are unchanged.
pub fn extra_signatures(list: &Signatures) -> Vec<SignatureSpec> {
    if list.iter().nth(1).is_none() { Vec::new() } else { list.iter().map(SignatureSpec::from).collect() }
}

impl From<SignatureSpec> for KeySignature {
    fn from(w: SignatureSpec) -> Self {
        KeySignature { key_id: w.key_id, signature: w.signature }
    }
}

impl From<&KeySignature> for SignatureSpec {
    fn from(s: &KeySignature) -> Self {
        SignatureSpec { key_id: s.key_id.clone(), signature: s.signature }
    }
}

impl TryFrom<KeyDocumentSpec> for SignedKeyDocument {
    type Error = ParseError;
    fn try_from(w: KeyDocumentSpec) -> Result<Self, ParseError> {
        let keys = TrustedKeys::new(w.keys.into_iter().map(|k| (k.id, k.public_key)))?;
        let document = KeyDocument::new(w.app, w.version, Threshold::new(w.threshold)?, keys)?;
        let signatures = Signatures::new(w.signatures.into_iter().map(KeySignature::from).collect())?;
        Ok(SignedKeyDocument { document, signatures })
    }
}

impl From<&SignedKeyDocument> for KeyDocumentSpec {
    fn from(s: &SignedKeyDocument) -> Self {
        let d = &s.document;
        KeyDocumentSpec {
            app: d.app().clone(),
            version: d.version(),
            threshold: d.threshold().get() as u64,
            keys: d.keys().iter().map(|(id, pk)| KeySpec { id: id.clone(), public_key: *pk }).collect(),
            signatures: s.signatures.iter().map(SignatureSpec::from).collect(),
        }
    }
}

// ---------- rollouts ----------

impl RolloutSpec {
    /// The rollout of `release` of `app` on `channel` these settings describe; the salt
    /// defaults to `app:version`.
    pub fn into_rollout(self, app: &AppId, release: Version, channel: ChannelName) -> Result<Rollout, ParseError> {
        let rules = Rules::new(self.rules)?;
        let schedule = self.schedule.map(Schedule::try_from).transpose()?;
        let gate = self.gate.map(HealthGate::try_from).transpose()?;
        Ok(Rollout {
            salt: self.salt.unwrap_or_else(|| Salt::default_for(app, &release)),
            release,
            channel,
            percent: self.basis_points,
            stickiness: self.stickiness,
            allow: IdList::new(self.allow)?,
            deny: IdList::new(self.deny)?,
            rules,
            state: self.state,
            interactive_bypass: self.interactive_bypass,
            schedule,
            gate,
            arm: None,
        })
    }
}

impl TryFrom<RolloutPatch> for RolloutEdit {
    type Error = ParseError;
    fn try_from(p: RolloutPatch) -> Result<Self, ParseError> {
        Ok(RolloutEdit {
            percent: p.basis_points,
            allow: p.allow.map(IdList::new).transpose()?,
            deny: p.deny.map(IdList::new).transpose()?,
            rules: p.rules.map(Rules::new).transpose()?,
            state: p.state,
            interactive_bypass: p.interactive_bypass,
            schedule: p.schedule.map(Schedule::try_from).transpose()?,
            gate: p.gate.map(HealthGate::try_from).transpose()?,
        })
    }
}

impl From<&Rollout> for RolloutSpec {
    fn from(r: &Rollout) -> Self {
        RolloutSpec {
            basis_points: r.percent,
            salt: Some(r.salt.clone()),
            stickiness: r.stickiness,
            allow: r.allow.iter().cloned().collect(),
            deny: r.deny.iter().cloned().collect(),
            rules: r.rules.to_vec(),
            state: r.state,
            interactive_bypass: r.interactive_bypass,
            schedule: r.schedule.as_ref().map(ScheduleSpec::from),
            gate: r.gate.clone().map(GateSpec::from),
        }
    }
}

impl TryFrom<ScheduleSpec> for Schedule {
    type Error = ParseError;
    fn try_from(w: ScheduleSpec) -> Result<Self, ParseError> {
        match (w.preset, w.steps.is_empty()) {
            (Some(preset), true) => Ok(preset.schedule()),
            (Some(_), false) => Err(ParseError::new(What::Rollout, "schedule", "give a preset or steps, not both")),
            (None, _) => Schedule::new(w.steps),
        }
    }
}

impl From<&Schedule> for ScheduleSpec {
    fn from(s: &Schedule) -> Self {
        ScheduleSpec { preset: None, steps: s.steps().to_vec() }
    }
}

impl TryFrom<GateSpec> for HealthGate {
    type Error = ParseError;
    fn try_from(g: GateSpec) -> Result<Self, ParseError> {
        HealthGate {
            max_install_failure_rate: g.max_install_failure_rate,
            max_crash_rate: g.max_crash_rate,
            min_sample: g.min_sample,
            compare: g.compare.map(Comparison::try_from).transpose()?,
            action: g.action,
            metrics: g.metrics.into_iter().map(MetricGate::try_from).collect::<Result<_, _>>()?,
        }
        .validate()
    }
}

impl From<HealthGate> for GateSpec {
    fn from(g: HealthGate) -> Self {
        GateSpec {
            max_install_failure_rate: g.max_install_failure_rate,
            max_crash_rate: g.max_crash_rate,
            min_sample: g.min_sample,
            compare: g.compare.map(CompareSpec::from),
            action: g.action,
            metrics: g.metrics.iter().map(MetricGateSpec::from).collect(),
        }
    }
}

impl TryFrom<MetricGateSpec> for MetricGate {
    type Error = ParseError;
    fn try_from(m: MetricGateSpec) -> Result<Self, ParseError> {
        let gate = MetricGate::new(
            m.name,
            m.degradation.unwrap_or(metric_gate_defaults::DEGRADATION),
            m.alpha.unwrap_or(metric_gate_defaults::ALPHA),
            m.min_count.unwrap_or(metric_gate_defaults::MIN_COUNT),
        )?;
        Ok(match m.better {
            Some(d) => gate.with_better(d),
            None => gate,
        })
    }
}

impl From<&MetricGate> for MetricGateSpec {
    fn from(m: &MetricGate) -> Self {
        MetricGateSpec {
            name: m.name().clone(),
            better: m.better(),
            degradation: Some(m.degradation()),
            alpha: Some(m.alpha()),
            min_count: Some(m.min_count()),
        }
    }
}

impl TryFrom<CompareSpec> for Comparison {
    type Error = ParseError;
    fn try_from(c: CompareSpec) -> Result<Self, ParseError> {
        let d = Comparison::default();
        Comparison::new(
            c.degradation.unwrap_or(d.degradation()),
            c.min_difference.unwrap_or(d.min_difference()),
            c.alpha.unwrap_or(d.alpha()),
            c.beta.unwrap_or(d.beta()),
            c.proven_from_bp.unwrap_or(d.proven_from()),
            c.step_sample.unwrap_or(d.step_sample()),
        )?
        .with_last_look(c.last_look.unwrap_or(d.last_look()))?
        .with_exhausted_after(c.exhausted_after_s.unwrap_or(d.exhausted_after_s()))?
        .with_crash_window(c.crash_window_s.unwrap_or(d.crash_window_s()))
        .map(|cmp| cmp.with_crashes_proven_from(c.crashes_proven_from_bp.unwrap_or(d.crashes_proven_from())))
    }
}

impl From<Comparison> for CompareSpec {
    fn from(c: Comparison) -> Self {
        CompareSpec {
            degradation: Some(c.degradation()),
            min_difference: Some(c.min_difference()),
            alpha: Some(c.alpha()),
            beta: Some(c.beta()),
            proven_from_bp: Some(c.proven_from()),
            step_sample: Some(c.step_sample()),
            last_look: Some(c.last_look()),
            exhausted_after_s: Some(c.exhausted_after_s()),
            crash_window_s: Some(c.crash_window_s()),
            crashes_proven_from_bp: Some(c.crashes_proven_from()),
        }
    }
}

impl From<&Evidence> for EvidenceView {
    fn from(e: &Evidence) -> Self {
        EvidenceView {
            metric: e.metric,
            call: match e.call {
                Call::Worse => "worse",
                Call::NoWorse => "no_worse",
                Call::Undecided => "undecided",
                Call::BaselineTooSmall => "baseline_too_small",
            }
            .to_owned(),
            bad: e.candidate.bad(),
            sample: e.candidate.total(),
            rate: e.candidate.rate(),
            baseline_bad: e.baseline.bad(),
            baseline_sample: e.baseline.total(),
            baseline_rate: e.baseline.rate(),
            tolerated: e.tolerated,
            worse: e.worse,
            statistic: e.statistic,
            halt_at: e.halt_at,
            accept_at: e.accept_at,
            proof_bad: e.proof.bad(),
            proof_sample: e.proof.total(),
            proof_statistic: e.proof_statistic,
        }
    }
}

/// A call as the status view spells it.
fn call_name(call: Call) -> String {
    match call {
        Call::Worse => "worse",
        Call::NoWorse => "no_worse",
        Call::Undecided => "undecided",
        Call::BaselineTooSmall => "baseline_too_small",
    }
    .to_owned()
}

impl From<&LastLook> for LastLookView {
    fn from(l: &LastLook) -> Self {
        LastLookView {
            metric: l.metric,
            call: call_name(l.call),
            bad: l.candidate.bad(),
            sample: l.candidate.total(),
            baseline_bad: l.baseline.bad(),
            baseline_sample: l.baseline.total(),
            tolerated: l.tolerated,
            worse: l.worse,
            proof_bad: l.proof.bad(),
            proof_sample: l.proof.total(),
            if_tolerated: l.if_tolerated,
            if_worse: l.if_worse,
            halt_below: l.halt_below,
            accept_below: l.accept_below,
        }
    }
}

impl LastLookTakenView {
    /// The view of a last look taken at `at_ms` on a step of `percent` that decided `step`.
    pub fn new(at_ms: u64, percent: Percent, step: &ExhaustedStep) -> Self {
        LastLookTakenView {
            at_ms,
            basis_points: percent,
            call: call_name(step.call),
            looks: step.looks.iter().map(LastLookView::from).collect(),
        }
    }
}

impl From<&MetricEvidence> for MetricEvidenceView {
    fn from(e: &MetricEvidence) -> Self {
        MetricEvidenceView {
            metric: e.name.clone(),
            call: match e.call {
                Call::Worse => "worse",
                Call::NoWorse => "no_worse",
                _ => "undecided",
            }
            .to_owned(),
            better: e.direction,
            measure: match e.measure {
                Measure::Values => "values",
                Measure::CountsPerReport => "counts_per_report",
            }
            .to_owned(),
            count: e.candidate.count(),
            mean: e.candidate.mean(),
            baseline_count: e.baseline.count(),
            baseline_mean: e.baseline.mean(),
            tolerated: e.tolerated,
            statistic: e.statistic,
            decides_at: e.bound,
        }
    }
}

impl From<&Distribution> for MetricFiguresView {
    fn from(d: &Distribution) -> Self {
        let f = d.figures();
        MetricFiguresView {
            count: Some(f.count),
            mean: (f.count > 0).then_some(f.mean),
            std_dev: (f.count > 1).then_some(f.std_dev),
            p50: f.p50,
            p90: f.p90,
            p99: f.p99,
            ..MetricFiguresView::default()
        }
    }
}

impl From<&CounterFigures> for MetricFiguresView {
    fn from(c: &CounterFigures) -> Self {
        MetricFiguresView {
            sum: Some(c.sum),
            devices: Some(c.devices),
            per_device: c.per_device(),
            ..MetricFiguresView::default()
        }
    }
}

// ---------- rules ----------

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RuleSpec::from(self.clone()).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rule::try_from(RuleSpec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn rule_err(reason: impl Into<std::borrow::Cow<'static, str>>, kind: RuleKind) -> ParseError {
    ParseError::new(What::Rule, kind.as_str(), reason)
}

fn strings<T>(
    kind: RuleKind,
    values: Option<Vec<TraitValue>>,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let values = values.ok_or_else(|| rule_err("needs \"values\": a non-empty list", kind))?;
    if values.is_empty() || values.len() > MAX_RULE_VALUES {
        return Err(rule_err(format!("\"values\" must hold 1 to {MAX_RULE_VALUES} entries"), kind));
    }
    values
        .iter()
        .map(|v| match v {
            TraitValue::Str(s) => parse(s).map_err(|e| rule_err(e.to_string(), kind)),
            other => Err(rule_err(format!("\"values\" must be strings, found {other}"), kind)),
        })
        .collect()
}

impl TryFrom<RuleSpec> for Rule {
    type Error = ParseError;
    fn try_from(w: RuleSpec) -> Result<Self, ParseError> {
        let kind = w.kind;
        let range = |r: Option<String>| r.ok_or_else(|| rule_err("needs \"range\", like \">=1.2.0, <2.0.0\"", kind));
        let expect_none = |present: bool, field: &str| {
            if present { Err(rule_err(format!("\"{field}\" does not apply to this kind"), kind)) } else { Ok(()) }
        };
        if !matches!(kind, RuleKind::OsVersion | RuleKind::AppVersion | RuleKind::Trait) {
            expect_none(w.range.is_some(), "range")?;
        }
        if kind != RuleKind::Trait {
            expect_none(w.name.is_some(), "name")?;
            expect_none(w.op.is_some(), "op")?;
            expect_none(w.value.is_some(), "value")?;
        }
        let rule = match kind {
            RuleKind::OsIn => Rule::OsIn(strings(kind, w.values, Os::parse)?),
            RuleKind::ArchIn => Rule::ArchIn(strings(kind, w.values, Arch::parse)?),
            RuleKind::LocaleIn => Rule::LocaleIn(strings(kind, w.values, Locale::parse)?),
            RuleKind::IpIn => Rule::IpIn(strings(kind, w.values, parse_network)?),
            RuleKind::OsVersion => {
                expect_none(w.values.is_some(), "values")?;
                Rule::OsVersion(range(w.range)?.parse().map_err(|e: ParseError| rule_err(e.to_string(), kind))?)
            }
            RuleKind::AppVersion => {
                expect_none(w.values.is_some(), "values")?;
                Rule::AppVersion(range(w.range)?.parse().map_err(|e: ParseError| rule_err(e.to_string(), kind))?)
            }
            RuleKind::Trait => {
                expect_none(w.range.is_some(), "range")?;
                let name = w.name.ok_or_else(|| rule_err("needs \"name\"", kind))?;
                let op =
                    w.op.ok_or_else(|| rule_err("needs \"op\": eq, ne, in, not_in, exists, lt, le, gt or ge", kind))?;
                let number = |v: Option<TraitValue>| match v {
                    Some(TraitValue::Num(n)) => Ok(n),
                    _ => Err(rule_err(format!("op {} needs a numeric \"value\"", op.as_str()), kind)),
                };
                let one = |v: Option<TraitValue>| {
                    v.ok_or_else(|| rule_err(format!("op {} needs \"value\"", op.as_str()), kind))
                };
                let many = |v: Option<Vec<TraitValue>>| match v {
                    Some(v) if !v.is_empty() && v.len() <= MAX_RULE_VALUES => Ok(v),
                    _ => Err(rule_err(
                        format!("op {} needs \"values\": 1 to {MAX_RULE_VALUES} entries", op.as_str()),
                        kind,
                    )),
                };
                let single =
                    matches!(op, TraitOp::Eq | TraitOp::Ne | TraitOp::Lt | TraitOp::Le | TraitOp::Gt | TraitOp::Ge);
                expect_none(single && w.values.is_some(), "values")?;
                expect_none(!single && w.value.is_some(), "value")?;
                let condition = match op {
                    TraitOp::Eq => TraitCondition::Eq(one(w.value)?),
                    TraitOp::Ne => TraitCondition::Ne(one(w.value)?),
                    TraitOp::In => TraitCondition::In(many(w.values)?),
                    TraitOp::NotIn => TraitCondition::NotIn(many(w.values)?),
                    TraitOp::Exists => {
                        expect_none(w.values.is_some(), "values")?;
                        TraitCondition::Exists
                    }
                    TraitOp::Lt => TraitCondition::Lt(number(w.value)?),
                    TraitOp::Le => TraitCondition::Le(number(w.value)?),
                    TraitOp::Gt => TraitCondition::Gt(number(w.value)?),
                    TraitOp::Ge => TraitCondition::Ge(number(w.value)?),
                };
                return Ok(Rule::Trait { name, condition });
            }
        };
        Ok(rule)
    }
}

impl From<Rule> for RuleSpec {
    fn from(r: Rule) -> Self {
        let strs = |v: Vec<String>| Some(v.into_iter().map(|s| TraitValue::Str(s.into())).collect());
        let mut w = RuleSpec { kind: RuleKind::OsIn, values: None, range: None, name: None, op: None, value: None };
        match r {
            Rule::OsIn(v) => w.values = strs(v.into_iter().map(String::from).collect()),
            Rule::ArchIn(v) => {
                w.kind = RuleKind::ArchIn;
                w.values = strs(v.into_iter().map(String::from).collect())
            }
            Rule::LocaleIn(v) => {
                w.kind = RuleKind::LocaleIn;
                w.values = strs(v.into_iter().map(String::from).collect())
            }
            Rule::IpIn(v) => {
                w.kind = RuleKind::IpIn;
                w.values = strs(v.iter().map(ToString::to_string).collect())
            }
            Rule::OsVersion(r) => {
                w.kind = RuleKind::OsVersion;
                w.range = Some(r.to_string())
            }
            Rule::AppVersion(r) => {
                w.kind = RuleKind::AppVersion;
                w.range = Some(r.to_string())
            }
            Rule::Trait { name, condition } => {
                w.kind = RuleKind::Trait;
                w.name = Some(name);
                let (op, value, values) = match condition {
                    TraitCondition::Eq(x) => (TraitOp::Eq, Some(x), None),
                    TraitCondition::Ne(x) => (TraitOp::Ne, Some(x), None),
                    TraitCondition::In(xs) => (TraitOp::In, None, Some(xs)),
                    TraitCondition::NotIn(xs) => (TraitOp::NotIn, None, Some(xs)),
                    TraitCondition::Exists => (TraitOp::Exists, None, None),
                    TraitCondition::Lt(b) => (TraitOp::Lt, Some(TraitValue::Num(b)), None),
                    TraitCondition::Le(b) => (TraitOp::Le, Some(TraitValue::Num(b)), None),
                    TraitCondition::Gt(b) => (TraitOp::Gt, Some(TraitValue::Num(b)), None),
                    TraitCondition::Ge(b) => (TraitOp::Ge, Some(TraitValue::Num(b)), None),
                };
                w.op = Some(op);
                w.value = value;
                w.values = values;
            }
        }
        w
    }
}

// ---------- explanations ----------

fn admission_reason(channel: &ChannelName, a: &Admission) -> Reason {
    let (code, detail) = match a {
        Admission::AllowList => ("allow_list", format!("on the {channel} rollout's allow list")),
        Admission::Interactive => ("interactive", format!("user-initiated check; the {channel} rollout lets those in")),
        Admission::Bucket { bucket, percent } => (
            "in_rollout",
            format!(
                "in the {channel} rollout: bucket {} is below {} ({percent})",
                bucket.get(),
                percent.basis_points()
            ),
        ),
        Admission::Arm { bucket, slot, percent } => (
            "in_arm",
            format!("in the {channel} experiment's arm: bucket {} is in the arm's {percent} of {slot}", bucket.get()),
        ),
    };
    Reason { code: code.into(), detail }
}

impl From<&Explanation> for ExplainResponse {
    fn from(x: &Explanation) -> Self {
        ExplainResponse {
            // The handler knows which channel the device named and where its id came from; the
            // trace does not.
            served_channel: None,
            identity: None,
            offered: x.offered.clone(),
            critical: x.critical,
            releases: x
                .releases
                .iter()
                .map(|t| match &t.verdict {
                    Verdict::Offered { channel, admission } => ReleaseVerdict {
                        version: t.version.clone(),
                        offered: true,
                        reasons: vec![admission_reason(channel, admission)],
                    },
                    Verdict::Skipped(skips) => ReleaseVerdict {
                        version: t.version.clone(),
                        offered: false,
                        reasons: skips
                            .iter()
                            .map(|s| Reason { code: s.code().into(), detail: s.to_string() })
                            .collect(),
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GateAction, ReleaseTrace, SchedulePreset, Skip, bucket};

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn rules_round_trip_through_json() {
        for json in [
            r#"{"kind":"os_in","values":["windows"]}"#,
            r#"{"kind":"app_version","range":">=1.2.0, <2.0.0"}"#,
            r#"{"kind":"trait","name":"ram","op":"ge","value":8.0}"#,
            r#"{"kind":"trait","name":"tier","op":"in","values":["gold",1,true]}"#,
            r#"{"kind":"ip_in","values":["10.0.0.0/8"]}"#,
        ] {
            let r = rule(json);
            let back: Rule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(r, back);
        }
        assert_eq!(rule(r#"{"kind":"trait","name":"ram","op":"ge","value":8}"#).to_string(), "trait ram >= 8");
        // Networks are stored as IPv4 when IPv4-mapped, without host bits.
        let printed = serde_json::to_string(&rule(r#"{"kind":"ip_in","values":["::ffff:10.1.0.0/104","192.0.2.7"]}"#));
        assert_eq!(printed.unwrap(), r#"{"kind":"ip_in","values":["10.0.0.0/8","192.0.2.7/32"]}"#);
    }

    #[test]
    fn bad_rules_say_why() {
        for (json, msg) in [
            (r#"{"kind":"os_in"}"#, "needs \"values\""),
            (r#"{"kind":"os_in","values":[]}"#, "1 to 1000"),
            (r#"{"kind":"os_in","values":[1]}"#, "must be strings"),
            (r#"{"kind":"os_in","values":["Windows"]}"#, "is not allowed"),
            (r#"{"kind":"os_version"}"#, "needs \"range\""),
            (r#"{"kind":"app_version","range":"~1"}"#, "invalid range"),
            (r#"{"kind":"trait","op":"eq","value":1}"#, "needs \"name\""),
            (r#"{"kind":"trait","name":"x","op":"lt","value":"a"}"#, "numeric"),
            (r#"{"kind":"trait","name":"x","op":"in","value":"a"}"#, "does not apply"),
            (r#"{"kind":"ip_in","values":["10.0.0.0/33"]}"#, "CIDR"),
            (r#"{"kind":"nope"}"#, "unknown variant"),
            (r#"{"kind":"os_in","values":["linux"],"extra":1}"#, "unknown field"),
            (r#"{"kind":"os_in","values":["linux"],"range":">1"}"#, "does not apply"),
        ] {
            let e = serde_json::from_str::<Rule>(json).unwrap_err().to_string();
            assert!(e.contains(msg), "{json}: {e}");
        }
    }

    #[test]
    fn schedules() {
        let apple = Schedule::try_from(ScheduleSpec { preset: Some(SchedulePreset::ApplePhased), steps: vec![] });
        let apple = apple.unwrap();
        assert_eq!(apple, Schedule::apple_phased());
        // An unknown preset is refused while the body is parsed, with the same sentence as ever.
        let e = serde_json::from_str::<ScheduleSpec>(r#"{"preset":"google"}"#).unwrap_err().to_string();
        assert!(e.contains(r#"invalid rollout "google": unknown schedule preset; the preset is apple_phased"#), "{e}");
        let steps = Schedule::apple_phased().steps().to_vec();
        let both = ScheduleSpec { preset: Some(SchedulePreset::ApplePhased), steps: steps.clone() };
        assert!(Schedule::try_from(both).unwrap_err().to_string().contains("give a preset or steps, not both"));
        // Answers always carry the steps, never the preset's name.
        assert_eq!(ScheduleSpec::from(&apple), ScheduleSpec { preset: None, steps });
    }

    #[test]
    fn gates() {
        let spec = GateSpec {
            max_install_failure_rate: Some(0.05),
            max_crash_rate: None,
            min_sample: 100,
            compare: None,
            action: GateAction::Pause,
            metrics: vec![],
        };
        let gate = HealthGate::try_from(spec.clone()).unwrap();
        assert_eq!((gate.max_install_failure_rate, gate.max_crash_rate, gate.min_sample), (Some(0.05), None, 100));
        assert_eq!(gate.action, GateAction::Pause);
        assert_eq!(GateSpec::from(gate), spec);
        for (bad, msg) in [
            (
                GateSpec { max_install_failure_rate: None, ..spec.clone() },
                "a gate needs max_install_failure_rate, max_crash_rate, compare or metrics",
            ),
            (GateSpec { max_crash_rate: Some(5.0), ..spec.clone() }, "rates are fractions from 0 to 1"),
            (
                GateSpec { compare: Some(CompareSpec { alpha: Some(0.0), ..CompareSpec::default() }), ..spec.clone() },
                "alpha and beta are error rates",
            ),
            (
                serde_json::from_str(r#"{"metrics":[{"name":"session_s","degradation":1.5}]}"#).unwrap(),
                "degradation is a fraction of the baseline's mean",
            ),
        ] {
            assert!(HealthGate::try_from(bad.clone()).unwrap_err().to_string().contains(msg), "{bad:?}");
        }
        // A comparing gate: absent fields take the defaults, answers carry them all.
        let only: GateSpec = serde_json::from_str(r#"{"compare":{"alpha":0.02}}"#).unwrap();
        let gate = HealthGate::try_from(only).unwrap();
        let c = gate.compare.unwrap();
        assert_eq!((c.alpha(), c.beta(), c.step_sample()), (0.02, Comparison::default().beta(), 20));
        let back = serde_json::to_value(GateSpec::from(gate.clone())).unwrap();
        assert_eq!(back["compare"]["proven_from_bp"], 200, "{back}");
        assert_eq!(HealthGate::try_from(serde_json::from_value::<GateSpec>(back).unwrap()).unwrap(), gate);
        // A gate stored before comparisons existed still reads.
        let old: GateSpec = serde_json::from_str(r#"{"max_crash_rate":0.1,"min_sample":5}"#).unwrap();
        assert_eq!(HealthGate::try_from(old).unwrap().compare, None);
        // A metric gate: its defaults, written out in answers.
        let on_metric: GateSpec = serde_json::from_str(r#"{"metrics":[{"name":"session_s"}]}"#).unwrap();
        let gate = HealthGate::try_from(on_metric).unwrap();
        let m = &gate.metrics[0];
        assert_eq!((m.name().as_str(), m.degradation(), m.alpha(), m.min_count()), ("session_s", 0.1, 0.01, 30));
        let back = serde_json::to_value(GateSpec::from(gate.clone())).unwrap();
        assert_eq!(
            back["metrics"],
            serde_json::json!([{"name": "session_s", "degradation": 0.1, "alpha": 0.01, "min_count": 30}])
        );
        assert_eq!(HealthGate::try_from(serde_json::from_value::<GateSpec>(back).unwrap()).unwrap(), gate);
    }

    #[test]
    fn rollouts_round_trip_and_default_their_salt() {
        let app = AppId::parse("notes").unwrap();
        let spec: RolloutSpec = serde_json::from_str(
            r#"{"basis_points":100,"rules":[{"kind":"os_in","values":["linux"]}],"allow":["a"],"deny":["b"],
                "schedule":{"preset":"apple_phased"},"gate":{"max_crash_rate":0.1,"min_sample":5}}"#,
        )
        .unwrap();
        let rollout = spec.clone().into_rollout(&app, "1.2.0".parse().unwrap(), ChannelName::beta()).unwrap();
        assert_eq!(rollout.salt.as_str(), "notes:1.2.0");
        let back = RolloutSpec::from(&rollout);
        assert_eq!(back.salt, Some(rollout.salt.clone()));
        assert_eq!(back.schedule, Some(ScheduleSpec::from(&Schedule::apple_phased())));
        assert_eq!(
            (&back.rules, &back.allow, &back.deny, &back.gate),
            (&spec.rules, &spec.allow, &spec.deny, &spec.gate)
        );
        let again = RolloutSpec::from(&rollout).into_rollout(&app, "1.2.0".parse().unwrap(), ChannelName::beta());
        assert_eq!(again.unwrap(), rollout);

        let too_many =
            RolloutSpec { rules: vec![rule(r#"{"kind":"os_in","values":["linux"]}"#); crate::MAX_RULES + 1], ..spec };
        let e = too_many.into_rollout(&app, "1.2.0".parse().unwrap(), ChannelName::beta()).unwrap_err();
        assert_eq!(e.to_string(), r#"invalid rollout "rules": at most 32 rules"#);
    }

    #[test]
    fn releases_round_trip_and_refuse_two_builds_for_one_target() {
        let spec: ReleaseSpec = serde_json::from_str(&format!(
            r#"{{"version":"1.2.0","notes":"n","critical":true,"rebuild_of":"1.0.0","artifacts":[
                {{"os":"linux","arch":"x86_64","sha256":"{sha}","size":1,"signature":"{sig}","key_id":"k1"}},
                {{"os":"windows","arch":"x86_64","sha256":"{sha}","size":1,"signature":"{sig}","key_id":"k1","url":"https://cdn.example.com/a"}}]}}"#,
            sha = "ab".repeat(32),
            sig = "cd".repeat(64)
        ))
        .unwrap();
        let release = Release::try_from(spec.clone()).unwrap();
        assert_eq!(ReleaseSpec::from(&release), spec);
        let mut twice = spec;
        twice.artifacts[1].os = twice.artifacts[0].os.clone();
        let e = Release::try_from(twice).unwrap_err().to_string();
        assert_eq!(e, r#"invalid release "1.2.0": two artifacts for linux/x86_64"#);
    }

    #[test]
    fn explanations_give_a_code_and_a_sentence_per_reason() {
        let v = |s: &str| -> Version { s.parse().unwrap() };
        let beta = ChannelName::beta();
        let b = bucket("notes:1.2.0", "d1");
        let pct = |bp| crate::Percent::from_basis_points(bp).unwrap();
        let trace = |version: &str, verdict| ReleaseTrace { version: v(version), verdict };
        let offered = |admission| Verdict::Offered { channel: beta.clone(), admission };
        let x = Explanation {
            offered: Some(v("1.4.0")),
            critical: true,
            releases: vec![
                trace("1.5.0", Verdict::Skipped(vec![Skip::Halted { channel: beta.clone() }])),
                trace("1.4.0", offered(Admission::Bucket { bucket: b, percent: pct(9000) })),
                trace("1.3.0", offered(Admission::AllowList)),
                trace("1.2.0", offered(Admission::Interactive)),
                trace(
                    "1.1.0",
                    Verdict::Skipped(vec![
                        Skip::Denied { channel: beta.clone() },
                        Skip::OutsideRollout { channel: ChannelName::stable(), bucket: b, percent: pct(550) },
                    ]),
                ),
            ],
        };
        // One line per reason: version, offered or skipped, code: sentence.
        let got: Vec<String> = ExplainResponse::from(&x)
            .releases
            .iter()
            .flat_map(|r| {
                let verdict = if r.offered { "offered" } else { "skipped" };
                r.reasons.iter().map(move |why| format!("{} {verdict} {}: {}", r.version, why.code, why.detail))
            })
            .collect();
        let b = b.get();
        let want = [
            "1.5.0 skipped halted: the beta rollout is halted".to_owned(),
            format!("1.4.0 offered in_rollout: in the beta rollout: bucket {b} is below 9000 (90%)"),
            "1.3.0 offered allow_list: on the beta rollout's allow list".to_owned(),
            "1.2.0 offered interactive: user-initiated check; the beta rollout lets those in".to_owned(),
            "1.1.0 skipped denied: the device or user is on the beta rollout's deny list".to_owned(),
            format!("1.1.0 skipped outside_rollout: outside the stable rollout: bucket {b} is not below 550 (5.5%)"),
        ];
        assert_eq!(got, want);
        let answer = ExplainResponse::from(&x);
        assert_eq!((answer.offered, answer.critical), (Some(v("1.4.0")), true));
    }

    #[test]
    fn a_check_request_becomes_a_check_in() {
        let req: CheckRequest = serde_json::from_str(
            r#"{"device_id":"d1","current_version":"1.0.0","channel":"beta","os":"linux","arch":"x86_64",
                "os_version":"6.1","locale":"en-US","traits":{"tier":"gold"},"interactive":true}"#,
        )
        .unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let c = req.into_checkin(Some(ip));
        assert_eq!(c.platform.target, Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() });
        assert_eq!((c.ip, c.kind, c.channel), (Some(ip), CheckKind::Interactive, ChannelName::beta()));
        assert_eq!(c.traits.get("tier"), Some(&TraitValue::Str("gold".into())));
    }
}
