//! One place to see and steer every running layer: a [`Registry`].
//!
//! During an incident an operator needs every breaker, budget and shedder at
//! once, to force a breaker open, and to raise a limit without a restart
//! that throws away every window and breaker state. Register the layers a
//! service builds, and the registry gives:
//!
//! - [`layers`](Registry::layers): each layer's id, [`LayerKind`] and a
//!   [`LayerStats`] snapshot; keyed layers' keys in pages
//!   ([`keys`](Registry::keys));
//! - [`force_open`](Registry::force_open),
//!   [`force_closed`](Registry::force_closed) and [`reset`](Registry::reset)
//!   of a breaker, or of one key of a keyed breaker;
//! - [`reload`](Registry::reload) of one layer and, with the config feature
//!   set, [`apply`](Registry::apply) of a whole `StackConfig`: a **live
//!   reload that keeps state** (each layer's own `reload` says what changes
//!   in place and what cannot).
//!
//! The registry holds clones of the layers' handles: it shares their state
//! and costs the calls nothing (its lock is taken only by the operator's
//! side). With the `admin` feature, [`seawall::axum::admin`](crate::axum)
//! serves it over HTTP.
//!
//! ```
//! use seawall::registry::{LayerKind, LayerStats, Registry};
//! use seawall::breaker::{BreakerLayer, State};
//!
//! let registry = Registry::new();
//! let breaker = BreakerLayer::standard();
//! registry.register("payments.breaker", &breaker)?;
//!
//! registry.force_open("payments.breaker", None)?;
//! assert_eq!(breaker.state(), State::ForcedOpen); // the layer itself changed
//!
//! let layers = registry.layers();
//! assert_eq!(layers[0].id, "payments.breaker");
//! assert_eq!(layers[0].kind, LayerKind::Breaker);
//! match &layers[0].stats {
//!     LayerStats::Breaker(stats) => assert_eq!(stats.state, State::ForcedOpen),
//!     other => unreachable!("{other:?}"),
//! }
//! # Ok::<(), seawall::registry::RegistryError>(())
//! ```
//!
//! Ids are the caller's: any non-empty string of at most
//! [`MAX_ID_LEN`] bytes. [`register_client`](Registry::register_client) and
//! [`register_server`](Registry::register_server) register each part of a
//! built stack under its config path (`client.breaker`, `server.shed`, …),
//! which is what [`apply`](Registry::apply) matches a new config against.

mod layers;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use seawall_core::ReloadError;

pub use layers::{KeyStats, LayerConfig, LayerKind, LayerStats, Register};

/// The longest id a layer may be registered under, in bytes.
pub const MAX_ID_LEN: usize = 128;

/// The most keys one [`Registry::keys`] page returns.
pub const MAX_PAGE: usize = 1000;

/// The layers of a service, by id; see the [module docs](self).
///
/// Cheap to clone: clones share one set of layers.
#[derive(Clone, Default)]
pub struct Registry {
    layers: Arc<RwLock<BTreeMap<String, Arc<dyn layers::Inspect>>>>,
    // Held across a reload or an apply, so two at once (a file watcher and
    // the admin endpoint) do not interleave layer by layer. Never held with
    // `layers`'s lock.
    reloads: Arc<Mutex<()>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layers = self.read();
        f.debug_struct("Registry")
            .field("layers", &layers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One layer as the registry sees it now: from [`Registry::layers`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LayerSnapshot {
    /// The id it was registered under.
    pub id: String,
    /// What kind of layer it is.
    pub kind: LayerKind,
    /// Its `stats()` now.
    pub stats: LayerStats,
}

/// One page of a keyed layer's keys: from [`Registry::keys`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyPage {
    /// Keys the layer holds now.
    pub total: usize,
    /// The position of this page's first key, in key order.
    pub offset: usize,
    /// The keys of this page (each as its `Display` form), in key order,
    /// with their stats.
    pub keys: Vec<(String, KeyStats)>,
}

/// What an operator can do to a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Control {
    /// Reject every call until reset or forced closed.
    ForceOpen,
    /// Admit every call; never trip until reset.
    ForceClosed,
    /// Back to a fresh Closed.
    Reset,
}

impl Control {
    /// A stable snake_case name (`force_open`, `force_closed`, `reset`).
    pub fn as_str(self) -> &'static str {
        match self {
            Control::ForceOpen => "force_open",
            Control::ForceClosed => "force_closed",
            Control::Reset => "reset",
        }
    }
}

/// Why a registry operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// An id is empty, too long, or holds a control character.
    BadId(String),
    /// Another layer is registered under this id.
    Duplicate(String),
    /// No layer is registered under this id.
    UnknownLayer(String),
    /// The keyed layer holds no such key (a key is named by its `Display` form).
    UnknownKey {
        /// The layer's id.
        layer: String,
        /// The key asked for.
        key: String,
    },
    /// The layer cannot do this (e.g. force a shedder open, or name a key of
    /// an unkeyed layer).
    Unsupported {
        /// The layer's id.
        layer: String,
        /// What was asked.
        what: &'static str,
    },
    /// The layer refused the new config; it runs on with the old one.
    Reload {
        /// The layer's id.
        layer: String,
        /// Why.
        error: ReloadError,
    },
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::BadId(id) => write!(
                f,
                "bad layer id {:?}: must be 1..={MAX_ID_LEN} bytes with no control characters",
                cut(id)
            ),
            RegistryError::Duplicate(id) => write!(f, "a layer is already registered as {id:?}"),
            RegistryError::UnknownLayer(id) => write!(f, "no layer is registered as {:?}", cut(id)),
            RegistryError::UnknownKey { layer, key } => {
                write!(f, "layer {layer:?} holds no key {:?}", cut(key))
            }
            RegistryError::Unsupported { layer, what } => {
                write!(f, "layer {layer:?} cannot {what}")
            }
            RegistryError::Reload { layer, error } => write!(f, "layer {layer:?}: {error}"),
        }
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegistryError::Reload { error, .. } => Some(error),
            _ => None,
        }
    }
}

// Ids and keys in errors come from requests: keep them short.
pub(crate) fn cut(text: &str) -> &str {
    match text.char_indices().nth(MAX_ID_LEN) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn check_id(id: &str) -> Result<(), RegistryError> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(RegistryError::BadId(cut(id).to_owned()));
    }
    Ok(())
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    // The lock guards only the map of handles; a panic while it was held
    // (there is no user code under it) leaves the map whole, so poisoning
    // is ignored.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<dyn layers::Inspect>>> {
        self.layers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<dyn layers::Inspect>>> {
        self.layers.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn reloading(&self) -> MutexGuard<'_, ()> {
        self.reloads.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Result<Arc<dyn layers::Inspect>, RegistryError> {
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| RegistryError::UnknownLayer(cut(id).to_owned()))
    }

    /// Registers `layer` under `id`. The registry keeps a clone of the
    /// layer's handle, which shares the layer's state: what it reports and
    /// what it changes is the running layer's.
    ///
    /// # Errors
    ///
    /// [`BadId`](RegistryError::BadId), or
    /// [`Duplicate`](RegistryError::Duplicate) if `id` is taken.
    pub fn register<L: Register>(
        &self,
        id: impl Into<String>,
        layer: &L,
    ) -> Result<(), RegistryError> {
        let id = id.into();
        check_id(&id)?;
        let mut layers = self.write();
        if layers.contains_key(&id) {
            return Err(RegistryError::Duplicate(id));
        }
        layers.insert(id, layer.inspect());
        Ok(())
    }

    /// Removes the layer registered under `id`; `false` if there was none.
    /// The layer itself runs on.
    pub fn remove(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }

    /// The ids registered, in order.
    pub fn ids(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every layer, in id order, with its stats now.
    pub fn layers(&self) -> Vec<LayerSnapshot> {
        // Snapshot the handles first: stats are read without the lock.
        let handles: Vec<_> = self
            .read()
            .iter()
            .map(|(id, l)| (id.clone(), l.clone()))
            .collect();
        handles
            .into_iter()
            .map(|(id, layer)| LayerSnapshot {
                id,
                kind: layer.kind(),
                stats: layer.stats(),
            })
            .collect()
    }

    /// The layer registered under `id`, with its stats now.
    pub fn layer(&self, id: &str) -> Option<LayerSnapshot> {
        let layer = self.get(id).ok()?;
        Some(LayerSnapshot {
            id: id.to_owned(),
            kind: layer.kind(),
            stats: layer.stats(),
        })
    }

    /// At most `limit` (capped at [`MAX_PAGE`]) keys of the keyed layer `id`,
    /// from the `offset`-th in key order (ordered by their `Display` form).
    ///
    /// Reading a page walks every key the layer holds (bounded by its key
    /// map's capacity): an operator's read, not a call's.
    ///
    /// # Errors
    ///
    /// [`UnknownLayer`](RegistryError::UnknownLayer), or
    /// [`Unsupported`](RegistryError::Unsupported) for an unkeyed layer.
    pub fn keys(&self, id: &str, offset: usize, limit: usize) -> Result<KeyPage, RegistryError> {
        let layer = self.get(id)?;
        let mut keys = layer.keys().ok_or_else(|| RegistryError::Unsupported {
            layer: id.to_owned(),
            what: "list its keys",
        })?;
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let total = keys.len();
        let keys = keys
            .into_iter()
            .skip(offset)
            .take(limit.min(MAX_PAGE))
            .collect();
        Ok(KeyPage {
            total,
            offset,
            keys,
        })
    }

    /// Forces the breaker `id` open; with `key`, that key's breaker in a
    /// keyed breaker (a key the map holds, named by its `Display` form).
    ///
    /// # Errors
    ///
    /// [`UnknownLayer`](RegistryError::UnknownLayer),
    /// [`UnknownKey`](RegistryError::UnknownKey), or
    /// [`Unsupported`](RegistryError::Unsupported) for a layer that is not a
    /// breaker (or a key given for an unkeyed one, or none for a keyed one).
    pub fn force_open(&self, id: &str, key: Option<&str>) -> Result<(), RegistryError> {
        self.control(id, key, Control::ForceOpen)
    }

    /// Forces the breaker `id` (or its `key`) closed; see
    /// [`force_open`](Self::force_open).
    pub fn force_closed(&self, id: &str, key: Option<&str>) -> Result<(), RegistryError> {
        self.control(id, key, Control::ForceClosed)
    }

    /// Resets the breaker `id` (or its `key`) to a fresh Closed; see
    /// [`force_open`](Self::force_open).
    pub fn reset(&self, id: &str, key: Option<&str>) -> Result<(), RegistryError> {
        self.control(id, key, Control::Reset)
    }

    /// Applies `control` to the breaker `id` (or its `key`).
    pub fn control(
        &self,
        id: &str,
        key: Option<&str>,
        control: Control,
    ) -> Result<(), RegistryError> {
        self.get(id)?
            .control(control, key)
            .map_err(|e| e.at(id, key))
    }

    /// Reloads the layer `id` with `config`, keeping its state; the layer's
    /// own `reload` says what changes in place.
    ///
    /// # Errors
    ///
    /// [`UnknownLayer`](RegistryError::UnknownLayer), or
    /// [`Reload`](RegistryError::Reload) when the layer refused (a config
    /// of another kind of layer is refused as `NotInPlace` on `kind`).
    pub fn reload(&self, id: &str, config: &LayerConfig) -> Result<(), RegistryError> {
        let layer = self.get(id)?;
        let _one = self.reloading();
        layer.reload(config).map_err(|error| RegistryError::Reload {
            layer: id.to_owned(),
            error,
        })
    }
}

/// Why a control call failed, before the layer id and key are known.
pub(crate) enum Refusal {
    NoKey,
    Unsupported(&'static str),
}

impl Refusal {
    fn at(self, id: &str, key: Option<&str>) -> RegistryError {
        match self {
            Refusal::NoKey => RegistryError::UnknownKey {
                layer: id.to_owned(),
                key: cut(key.unwrap_or_default()).to_owned(),
            },
            Refusal::Unsupported(what) => RegistryError::Unsupported {
                layer: id.to_owned(),
                what,
            },
        }
    }
}

#[cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
mod stacks;

#[cfg(all(
    feature = "serde",
    feature = "budget",
    feature = "breaker",
    feature = "shed",
    feature = "timeout",
    feature = "retry"
))]
pub use stacks::ApplyReport;
