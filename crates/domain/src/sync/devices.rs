//! Sync devices: one per install or browser profile, owned by one user, with the bookkeeping
//! that makes pushes exactly-once (the last applied mutation id and the last results).

use chrono::{DateTime, Utc};

use super::{MutationResult, SyncService};
use crate::access::{Caller, Scope};
use crate::feed::{CommitError, Write, WriteBatch};
use crate::ports::StoreError;
use crate::values::{Invalid, checked_name};
use crate::{DeviceId, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub user_id: UserId,
    pub name: String,
    pub platform: String,
    /// The last mutation applied (or rejected) for this device; 0 before the first.
    pub last_mutation_id: i64,
    /// The results of the last mutations, oldest first (at most
    /// [`RECENT_RESULTS`](super::RECENT_RESULTS)), for `duplicate` answers.
    pub recent_results: Vec<MutationResult>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl Device {
    /// The kept result of `mutation_id`, if still kept.
    pub fn result_of(&self, mutation_id: i64) -> Option<&MutationResult> {
        self.recent_results
            .iter()
            .rev()
            .find(|r| r.mutation_id == mutation_id)
    }

    /// Records a result the way the adapter does on [`Write::AdvanceDevice`].
    pub(crate) fn advance(&mut self, result: MutationResult) {
        self.last_mutation_id = result.mutation_id;
        self.recent_results.push(result.stored());
        let excess = self
            .recent_results
            .len()
            .saturating_sub(super::RECENT_RESULTS);
        self.recent_results.drain(..excess);
    }
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait::async_trait]
pub trait DeviceRepository: Send + Sync {
    /// The device, whoever owns it; `None` when unknown or deleted.
    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError>;
    /// The user's devices, oldest first.
    async fn devices_of(&self, user: UserId) -> Result<Vec<Device>, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    pub name: String,
    pub platform: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device not found")]
    NotFound,
    #[error("read-only tokens cannot change devices")]
    Forbidden,
    #[error("at most {limit} devices per user")]
    TooMany { limit: usize },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const MAX_DEVICES: usize = 200;
const MAX_NAME: usize = 100;
const MAX_PLATFORM: usize = 50;

impl SyncService {
    #[tracing::instrument(skip_all, fields(user = %caller.user_id))]
    pub async fn register_device(
        &self,
        caller: &Caller,
        request: NewDevice,
    ) -> Result<Device, DeviceError> {
        if caller.scope == Scope::Read {
            return Err(DeviceError::Forbidden);
        }
        let name = checked_name("name", &request.name, MAX_NAME)?;
        let platform = checked_name("platform", &request.platform, MAX_PLATFORM)?;
        if self.ports.devices.devices_of(caller.user_id).await?.len() >= MAX_DEVICES {
            return Err(DeviceError::TooMany { limit: MAX_DEVICES });
        }
        let now = self.ports.clock.now();
        let device = Device {
            id: DeviceId::new(),
            user_id: caller.user_id,
            name,
            platform,
            last_mutation_id: 0,
            recent_results: Vec::new(),
            created_at: now,
            last_seen_at: now,
        };
        let batch = WriteBatch::by(caller.user_id).write(Write::InsertDevice(device.clone()));
        self.ports.uow.commit(batch).await.map_err(device_error)?;
        Ok(device)
    }

    pub async fn devices(&self, caller: &Caller) -> Result<Vec<Device>, DeviceError> {
        Ok(self.ports.devices.devices_of(caller.user_id).await?)
    }

    #[tracing::instrument(skip_all, fields(user = %caller.user_id, device = %id))]
    pub async fn delete_device(&self, caller: &Caller, id: DeviceId) -> Result<(), DeviceError> {
        if caller.scope == Scope::Read {
            return Err(DeviceError::Forbidden);
        }
        self.own_device(caller, id).await?;
        let batch = WriteBatch::by(caller.user_id).write(Write::DeleteDevice {
            id,
            user: caller.user_id,
        });
        self.ports
            .uow
            .commit(batch)
            .await
            .map_err(device_error)
            .map(drop)
    }

    /// The caller's device; `NotFound` for anyone else's (no existence leak).
    pub(crate) async fn own_device(
        &self,
        caller: &Caller,
        id: DeviceId,
    ) -> Result<Device, DeviceError> {
        self.ports
            .devices
            .device(id)
            .await?
            .filter(|d| d.user_id == caller.user_id)
            .ok_or(DeviceError::NotFound)
    }
}

fn device_error(e: CommitError) -> DeviceError {
    match e {
        CommitError::Store(e) => DeviceError::Store(e),
        // Deleted meanwhile (or, for an insert, an id clash that a v7 id makes impossible).
        CommitError::Stale(_) | CommitError::Duplicate(_) => DeviceError::NotFound,
        CommitError::NoOwnerLeft => DeviceError::Store(StoreError::Unexpected(anyhow::anyhow!(e))),
    }
}
