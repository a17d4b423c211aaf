//! proptest strategies for every jute type, so round-trip tests cover every record.

use bytes::Bytes;
use proptest::prelude::*;

/// A strategy for any value of the type.
pub trait Arb: Sized + std::fmt::Debug {
    fn arb() -> BoxedStrategy<Self>;
}

impl Arb for i32 {
    fn arb() -> BoxedStrategy<Self> {
        any::<i32>().boxed()
    }
}

impl Arb for i64 {
    fn arb() -> BoxedStrategy<Self> {
        any::<i64>().boxed()
    }
}

impl Arb for bool {
    fn arb() -> BoxedStrategy<Self> {
        any::<bool>().boxed()
    }
}

impl Arb for String {
    fn arb() -> BoxedStrategy<Self> {
        ".{0,24}".boxed()
    }
}

impl Arb for Option<String> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::option::of(".{0,24}").boxed()
    }
}

impl Arb for Option<Bytes> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
            .boxed()
    }
}

impl<T: Arb + 'static> Arb for Vec<T> {
    fn arb() -> BoxedStrategy<Self> {
        proptest::collection::vec(T::arb(), 0..4).boxed()
    }
}
