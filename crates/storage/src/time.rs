//! A timestamp column type that compares correctly on both databases.
//!
//! sqlx writes `DateTime<Utc>` to SQLite as RFC 3339 text with a variable number of
//! fractional digits, so `"…:05+00:00" > "…:05.5+00:00"` as text. [`Ts`] always writes six
//! fractional digits and a `Z`, which makes text order equal time order. On PostgreSQL it
//! is a plain `TIMESTAMPTZ`.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ts(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Ts {
    fn from(value: DateTime<Utc>) -> Self {
        Ts(value)
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <DateTime<Utc> as Type<Sqlite>>::compatible(ty)
    }
}

impl Ts {
    /// The text SQLite keeps.
    pub(crate) fn text(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl<'q> Encode<'q, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Sqlite>>::decode(value).map(Ts)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<'r, Postgres>>::decode(value).map(Ts)
    }
}

/// rusqlite writes and reads the same text (`sqlite_inline`, `sqlite_pages`).
impl rusqlite::types::ToSql for Ts {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.text().into())
    }
}

impl rusqlite::types::FromSql for Ts {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        DateTime::parse_from_rfc3339(value.as_str()?)
            .map(|at| Ts(at.with_timezone(&Utc)))
            .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
    }
}

/// Now, truncated to the microsecond both databases keep, so a value read back equals
/// the value written.
pub(crate) fn now() -> DateTime<Utc> {
    uj_domain::now()
}

/// `at` as the databases keep it: to the microsecond.
pub(crate) fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    uj_domain::stored(at)
}
