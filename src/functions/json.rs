//! Eddy UDFs for ksqlDB's JSON functions that DataFusion lacks.
//!
//! `TO_JSON_STRING(x)`: any value as the JSON text ksqlDB writes for it (the same conversion
//! the JSON format uses, [`crate::format::json`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::DataType;
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `TO_JSON_STRING(x)`
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToJsonString {
    signature: Signature,
}

impl ToJsonString {
    /// The function as a DataFusion UDF.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for ToJsonString {
    fn name(&self) -> &str {
        "to_json_string"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].clone().into_array(args.number_rows)?;
        let mut out = StringBuilder::with_capacity(values.len(), values.len() * 8);
        for row in 0..values.len() {
            let value = ScalarValue::try_from_array(&values, row)?;
            let json = match value {
                // A TIME reads as Java's LocalTime prints it.
                ScalarValue::Time32Millisecond(Some(ms)) => {
                    serde_json::Value::String(local_time(ms))
                }
                other => crate::format::json::from_scalar(&other),
            };
            out.append_value(json.to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// Milliseconds of the day as Java's `LocalTime.toString()`: `HH:mm`, with `:ss` when the
/// seconds are not zero and `.SSS` when the milliseconds are not.
fn local_time(ms: i32) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    match (s, milli) {
        (0, 0) => format!("{h:02}:{m:02}"),
        (_, 0) => format!("{h:02}:{m:02}:{s:02}"),
        _ => format!("{h:02}:{m:02}:{s:02}.{milli:03}"),
    }
}
