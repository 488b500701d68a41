//! The store's enumerations use the shared `text_enum!` macro of
//! `pilothouse-types`.

pub(crate) use pilothouse_types::text_enum;

#[cfg(test)]
mod tests {
    use crate::{Health, ObjectAction, SyncMode};

    #[test]
    fn text_enums_round_trip_and_name_the_allowed_values() {
        for mode in SyncMode::ALL {
            assert_eq!(mode.as_str().parse::<SyncMode>().unwrap(), *mode);
        }
        let error = "sometimes".parse::<SyncMode>().unwrap_err();
        assert_eq!(
            error,
            "unknown sync mode `sometimes` (expected one of: manual, auto, self_heal)"
        );
        assert_eq!(
            serde_json::to_string(&ObjectAction::PruneSkipped).unwrap(),
            "\"prune_skipped\""
        );
        assert_eq!(
            Health::worst([Health::Healthy, Health::Degraded, Health::Missing]),
            Health::Degraded
        );
        assert_eq!(
            Health::worst([Health::Progressing, Health::Unknown]),
            Health::Unknown
        );
        assert_eq!(Health::worst([]), Health::Healthy);
    }
}
