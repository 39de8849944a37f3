//! State steps keep between runs of one process — an issuer's JWKS, the AWS default
//! configuration, the fingerprints of what a run uploaded — owned by whoever runs scenarios
//! (`flowprobe run`, `serve`) and handed to every step through its context: one value per type.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A map from a type to its one shared value, created on first use.
#[derive(Default)]
pub struct Shared {
    values: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Shared {
    /// The value of type `T`, made with `T::default()` the first time it is asked for.
    pub fn get<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut values = self
            .values
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()) as Arc<dyn Any + Send + Sync>);
        match Arc::clone(entry).downcast::<T>() {
            Ok(value) => value,
            // Unreachable: the entry under T's id was made as a T. Stay correct anyway.
            Err(_) => {
                let fresh = Arc::new(T::default());
                *entry = fresh.clone();
                fresh
            }
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn one_value_per_type_is_kept_and_separate_instances_do_not_share() {
        let shared = Shared::default();
        shared.get::<AtomicU32>().fetch_add(2, Ordering::SeqCst);
        assert_eq!(shared.get::<AtomicU32>().load(Ordering::SeqCst), 2);
        assert_eq!(
            *shared.get::<Mutex<Vec<u8>>>().lock().unwrap(),
            Vec::<u8>::new()
        );
        assert_eq!(
            Shared::default().get::<AtomicU32>().load(Ordering::SeqCst),
            0
        );
    }
}
