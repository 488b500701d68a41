//! Enumerations named by lowercase text (in the database's `CHECK`
//! constraints, the API and the CLI): one macro gives each its `as_str`,
//! `Display`, `FromStr`, serde names and the list of its values. The crate
//! that uses it must depend on `serde`.

/// Declares a `Copy` enum whose variants map one-to-one to the given
/// lowercase names (as in the database's `CHECK` constraints and the API).
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
                 ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| {
                        let expected: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!(concat!("unknown ", $what, " `{}` (expected one of: {})"), s, expected.join(", "))
                    })
            }
        }
    };
}
