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
            out.append_value(crate::format::json::from_scalar(&value).to_string());
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}
