//! What happens to each metadata key: kept, dropped, generalised or
//! pseudonymised. Keys the policy does not name are dropped (fail closed).

use std::collections::BTreeMap;

/// The treatment of one metadata key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Passed through unchanged: only for values that identify nobody.
    Keep,
    /// Removed.
    Drop,
    /// Made coarse (see [`crate::deid::generalise`]); values that cannot be
    /// made coarse safely are dropped.
    Generalise,
    /// Replaced by a keyed pseudonym.
    Pseudonymise,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::Generalise => "generalise",
            Action::Pseudonymise => "pseudonymise",
        }
    }
}

/// Metadata key of the EDF/BDF header's patient identification field.
pub const HEADER_PATIENT_KEY: &str = "patient";
/// Metadata key of each EDF+ annotation or WFDB aux text.
pub const ANNOTATION_KEY: &str = "annotation";

/// A de-identification policy over metadata keys and annotation terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Author's version of the policy, reported in the audit record.
    pub version: u32,
    /// Exact key names (compared case-insensitively) and their action.
    pub keys: BTreeMap<String, Action>,
    /// Annotation texts kept verbatim (compared case-insensitively, after
    /// trimming); any other annotation is redacted.
    pub annotation_allow: Vec<String>,
    /// Keys whose value identifies the patient, in order of preference: the
    /// first present drives the patient pseudonym and the date shift.
    pub patient_keys: Vec<String>,
}

/// HIPAA Safe Harbor's 18 identifier kinds (45 CFR 164.514(b)(2)), as the
/// metadata key names a device, a header or an integration is likely to
/// use. Dates and geography are generalised; identifiers that link records
/// of one patient are pseudonymised; everything else is dropped.
const SAFE_HARBOR_KEYS: &[(&str, Action)] = &[
    // (A) names
    ("name", Action::Drop),
    ("patient_name", Action::Drop),
    ("first_name", Action::Drop),
    ("last_name", Action::Drop),
    ("given_name", Action::Drop),
    ("family_name", Action::Drop),
    ("physician", Action::Drop),
    ("technician", Action::Drop),
    ("operator", Action::Drop),
    // (B) geography smaller than a state: the 3-digit ZIP survives where allowed
    ("address", Action::Drop),
    ("street", Action::Drop),
    ("city", Action::Drop),
    ("county", Action::Drop),
    ("zip", Action::Generalise),
    ("zip_code", Action::Generalise),
    ("postcode", Action::Generalise),
    ("geo", Action::Drop),
    ("location", Action::Drop),
    // (C) dates other than the year, and ages over 89
    ("birth_date", Action::Generalise),
    ("date_of_birth", Action::Generalise),
    ("dob", Action::Generalise),
    ("admission_date", Action::Generalise),
    ("discharge_date", Action::Generalise),
    ("death_date", Action::Generalise),
    ("age", Action::Generalise),
    // (D-F) phone, fax, e-mail
    ("phone", Action::Drop),
    ("telephone", Action::Drop),
    ("fax", Action::Drop),
    ("email", Action::Drop),
    // (G) SSN
    ("ssn", Action::Drop),
    ("social_security_number", Action::Drop),
    // (H-J) MRN, health plan, account: linkable within the study, so keyed
    ("mrn", Action::Pseudonymise),
    ("medical_record_number", Action::Pseudonymise),
    ("patient_id", Action::Pseudonymise),
    ("subject_id", Action::Pseudonymise),
    (HEADER_PATIENT_KEY, Action::Pseudonymise),
    ("health_plan", Action::Drop),
    ("health_plan_id", Action::Drop),
    ("account", Action::Drop),
    ("account_number", Action::Drop),
    ("encounter_id", Action::Pseudonymise),
    // (K) certificate and licence numbers
    ("certificate", Action::Drop),
    ("license", Action::Drop),
    ("licence", Action::Drop),
    // (L) vehicle identifiers
    ("vehicle_id", Action::Drop),
    ("license_plate", Action::Drop),
    // (M) device identifiers and serial numbers
    ("device_serial", Action::Drop),
    ("serial", Action::Drop),
    ("serial_number", Action::Drop),
    ("device_id", Action::Pseudonymise),
    ("udi", Action::Drop),
    // (N, O) URLs, IP addresses
    ("url", Action::Drop),
    ("ip", Action::Drop),
    ("ip_address", Action::Drop),
    ("hostname", Action::Drop),
    ("mac_address", Action::Drop),
    // (P, Q) biometric identifiers, photographs
    ("biometric", Action::Drop),
    ("photo", Action::Drop),
    ("fingerprint", Action::Drop),
    // (R) any other unique number or code; EDF/WFDB free text
    ("recording", Action::Drop),
    ("comments", Action::Drop),
    ("note", Action::Drop),
    ("notes", Action::Drop),
    (ANNOTATION_KEY, Action::Generalise),
    // Not identifying: how the data were recorded.
    ("format", Action::Keep),
    ("sex", Action::Keep),
    ("gender", Action::Keep),
];

/// EDF+ and PhysioNet annotation texts that name events, not people.
const DEFAULT_ANNOTATION_TERMS: &[&str] = &[
    "Recording starts",
    "Recording ends",
    "Lights off",
    "Lights on",
    "Eyes open",
    "Eyes closed",
    "Sleep stage W",
    "Sleep stage 1",
    "Sleep stage 2",
    "Sleep stage 3",
    "Sleep stage 4",
    "Sleep stage R",
    "Sleep stage ?",
    "Movement time",
    "Arousal",
    "Apnea",
    "Hypopnea",
    "Desaturation",
    "Seizure",
    "Artifact",
    "Artefact",
    "Photic stimulation",
    "Hyperventilation",
    "T0",
    "T1",
    "T2",
];

impl Policy {
    /// The built-in policy: Safe Harbor keys, event-only annotations.
    pub fn safe_harbor() -> Policy {
        Policy {
            version: 1,
            keys: SAFE_HARBOR_KEYS
                .iter()
                .map(|&(k, a)| (k.to_string(), a))
                .collect(),
            annotation_allow: DEFAULT_ANNOTATION_TERMS.iter().map(|t| t.to_string()).collect(),
            patient_keys: [
                "patient_id",
                "mrn",
                "medical_record_number",
                "subject_id",
                HEADER_PATIENT_KEY,
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    /// The action for a key; unknown keys are dropped.
    pub fn action(&self, key: &str) -> Action {
        if let Some(&action) = self.keys.get(key) {
            return action;
        }
        self.keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map_or(Action::Drop, |(_, &a)| a)
    }

    pub fn allows_annotation(&self, text: &str) -> bool {
        let text = text.trim();
        self.annotation_allow
            .iter()
            .any(|t| t.trim().eq_ignore_ascii_case(text))
    }

    /// First 16 hex digits of SHA-256 over a canonical text of the policy:
    /// identifies exactly which rules a run applied, without the rules.
    pub fn fingerprint(&self) -> String {
        let mut canonical = format!("v{}\n", self.version);
        for (key, action) in &self.keys {
            canonical.push_str(&format!(
                "key\0{}\0{}\n",
                key.to_ascii_lowercase(),
                action.as_str()
            ));
        }
        let mut terms: Vec<String> = self
            .annotation_allow
            .iter()
            .map(|t| t.trim().to_lowercase())
            .collect();
        terms.sort();
        for term in terms {
            canonical.push_str(&format!("allow\0{term}\n"));
        }
        for key in &self.patient_keys {
            canonical.push_str(&format!("patient\0{key}\n"));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_dropped_and_lookups_ignore_case() {
        let policy = Policy::safe_harbor();
        assert_eq!(policy.action("favourite_colour"), Action::Drop);
        assert_eq!(policy.action("MRN"), Action::Pseudonymise);
        assert_eq!(policy.action("format"), Action::Keep);
        assert_eq!(policy.action("recording"), Action::Drop);
    }

    #[test]
    fn annotations_match_whole_terms_only() {
        let policy = Policy::safe_harbor();
        assert!(policy.allows_annotation(" sleep stage w "));
        assert!(!policy.allows_annotation("Seizure, called Dr Smith"));
    }

    #[test]
    fn fingerprint_tracks_every_rule() {
        let base = Policy::safe_harbor();
        let mut changed = base.clone();
        changed.keys.insert("bed".into(), Action::Keep);
        assert_ne!(base.fingerprint(), changed.fingerprint());
        assert_eq!(base.fingerprint(), Policy::safe_harbor().fingerprint());
        assert_eq!(base.fingerprint().len(), 16);
    }
}
