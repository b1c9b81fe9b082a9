//! Lua scripts run with `EVALSHA`, falling back to `EVAL` when Redis does not know the script yet
//! (first use, restart, `SCRIPT FLUSH`). Each runs atomically, which is why the adapters use them:
//! a counter never lives without its expiry, a presence entry is never half refreshed.

use fred::prelude::{Client, ClientLike, FromValue, Options};
use fred::types::{ClusterHash, CustomCommand, Value};

pub(crate) struct LuaScript {
    lua: &'static str,
    sha1: String,
}

impl LuaScript {
    pub(crate) fn new(lua: &'static str) -> Self {
        let sha1 = fred::types::scripts::Script::from_lua(lua)
            .sha1()
            .to_string();
        Self { lua, sha1 }
    }

    /// Runs the script on `keys` and `args` with the per-call `options` (timeout, fail-fast).
    pub(crate) async fn run<R: FromValue>(
        &self,
        client: &Client,
        options: &Options,
        keys: &[&str],
        args: Vec<Value>,
    ) -> Result<R, fred::error::Error> {
        let client = client.with_options(options);
        let mut call: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
        call.push(self.sha1.as_str().into());
        call.push(Value::Integer(keys.len() as i64));
        call.extend(keys.iter().map(|k| Value::from(*k)));
        call.extend(args);
        // The key (third argument) decides the node in a cluster.
        let evalsha = CustomCommand::new_static("EVALSHA", ClusterHash::Offset(2), false);
        match client.custom(evalsha, call.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                call[0] = self.lua.into();
                let eval = CustomCommand::new_static("EVAL", ClusterHash::Offset(2), false);
                client.custom(eval, call).await
            }
            result => result,
        }
    }
}
