//! Counting the Secrets Manager calls a client makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_secretsmanager::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::error::BoxError;
use aws_sdk_secretsmanager::operation::{
    create_secret::CreateSecretInput, delete_secret::DeleteSecretInput, describe_secret::DescribeSecretInput,
    get_secret_value::GetSecretValueInput, list_secret_version_ids::ListSecretVersionIdsInput,
    put_secret_value::PutSecretValueInput, tag_resource::TagResourceInput, untag_resource::UntagResourceInput,
    update_secret_version_stage::UpdateSecretVersionStageInput,
};

/// An SDK interceptor that counts API calls by operation (one per call,
/// however many attempts the SDK's retries make). For measurements and
/// metrics; it sees only the operation's type, never its input.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use rekey_aws::{ApiCallCounter, AwsConfig, AwsSecretsStore};
/// let counter = ApiCallCounter::new();
/// let sdk = AwsConfig::default().with_region("eu-west-1").sdk_config().await?;
/// let conf = rekey_aws::sdk::config::Builder::from(&sdk).interceptor(counter.clone()).build();
/// let store = AwsSecretsStore::new(rekey_aws::sdk::Client::from_conf(conf));
/// // ... use the store ...
/// println!("{} calls: {:?}", counter.total(), counter.by_operation());
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct ApiCallCounter {
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl ApiCallCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Calls counted so far, all operations.
    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).values().sum()
    }

    /// Calls counted so far, by operation name (`GetSecretValue`, ...).
    pub fn by_operation(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn record(&self, op: &'static str) {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner).entry(op).or_insert(0) += 1;
    }
}

fn operation_name(ctx: &BeforeSerializationInterceptorContextRef<'_>) -> &'static str {
    let input = ctx.input();
    macro_rules! name_of {
        ($($ty:ty => $name:literal),* $(,)?) => {
            $(if input.downcast_ref::<$ty>().is_some() { return $name; })*
        };
    }
    name_of!(
        GetSecretValueInput => "GetSecretValue",
        PutSecretValueInput => "PutSecretValue",
        UpdateSecretVersionStageInput => "UpdateSecretVersionStage",
        ListSecretVersionIdsInput => "ListSecretVersionIds",
        CreateSecretInput => "CreateSecret",
        DescribeSecretInput => "DescribeSecret",
        DeleteSecretInput => "DeleteSecret",
        TagResourceInput => "TagResource",
        UntagResourceInput => "UntagResource",
    );
    "Other"
}

impl Intercept for ApiCallCounter {
    fn name(&self) -> &'static str {
        "rekey::ApiCallCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.record(operation_name(context));
        Ok(())
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}
