//! Functions that ksqlDB's functional-test harness adds for its tests, available to
//! `eddy test qtt` only (see [`enable`]).
//!
//! `WHENCONDITION(b, ok)` and `WHENRESULT(n, ok)` return their first argument and fail when
//! their second is false: a CASE that evaluates a branch it should not fails the query, which
//! is how ksqlDB's suite proves that CASE is lazy. They are not part of ksqlDB's language and
//! are never resolved outside the test runner.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use datafusion_common::{Result, exec_err};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes the test functions resolvable in this process (the test runner calls it).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The test function `name` (upper case), when enabled.
pub fn function(name: &str) -> Option<Arc<ScalarUDF>> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let returns = match name {
        "WHENCONDITION" => DataType::Boolean,
        "WHENRESULT" => DataType::Int32,
        _ => return None,
    };
    Some(Arc::new(ScalarUDF::new_from_impl(FailUnless {
        name: name.to_ascii_lowercase(),
        returns,
        signature: Signature::any(2, Volatility::Volatile),
    })))
}

/// Returns its first argument; fails on a row whose second argument is false.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FailUnless {
    name: String,
    returns: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for FailUnless {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [value, ok] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", self.name);
        };
        let ok = ok.to_array(rows)?;
        let ok = arrow::compute::cast(&ok, &DataType::Boolean)?;
        let ok = ok.as_boolean();
        if (0..ok.len()).any(|i| ok.is_valid(i) && !ok.value(i)) {
            return exec_err!("{} was evaluated where it must not be", self.name);
        }
        let value = value.to_array(rows)?;
        Ok(ColumnarValue::Array(arrow::compute::cast(
            &value,
            &self.returns,
        )?))
    }
}
