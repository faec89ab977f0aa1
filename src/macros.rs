//! The crate's one macro: the inner-service accessors every middleware
//! service has (tower-http's `get_ref`, `get_mut`, `into_inner`).

/// `get_ref`, `get_mut` and `into_inner` for a service whose wrapped
/// service is the field `inner` of type `S`, inside its `impl<S>` block.
macro_rules! inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// The wrapped service, the layer removed.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

pub(crate) use inner_service_accessors;
