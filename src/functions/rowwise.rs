//! ksqlDB scalar functions DataFusion lacks, computed row by row: URL parts, JSON paths,
//! padding and splitting.
//!
//! Each is a plain Rust function from the row's argument values to the result value,
//! wrapped once as a DataFusion UDF by [`RowFn`]. A NULL argument gives NULL unless the
//! function says otherwise. Row-by-row evaluation is simple rather than fast; these are not
//! on the hot path of the queries Eddy is measured on.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field};
use datafusion_common::{Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value as Json;

use crate::format::timestamp::JavaPattern;

type Body = fn(&[ScalarValue]) -> ScalarValue;

/// A function computed from each row's argument values.
#[derive(Debug)]
pub struct RowFn {
    name: &'static str,
    returns: DataType,
    body: Body,
    signature: Signature,
    /// The body is called with NULL arguments too (else a NULL argument gives NULL).
    takes_nulls: bool,
}

// Functions are identified by name: each name has one body.
super::identified_by!(RowFn, name);

impl RowFn {
    fn udf(name: &'static str, arity: usize, returns: DataType, body: Body) -> Arc<ScalarUDF> {
        Self::with_signature(
            name,
            Signature::any(arity, Volatility::Immutable),
            returns,
            body,
        )
    }

    /// A function taking any number of arguments (none included).
    fn variadic(name: &'static str, returns: DataType, body: Body) -> Arc<ScalarUDF> {
        Self::with_signature(
            name,
            Signature::one_of(
                vec![
                    datafusion_expr::TypeSignature::VariadicAny,
                    datafusion_expr::TypeSignature::Nullary,
                ],
                Volatility::Immutable,
            ),
            returns,
            body,
        )
    }

    fn with_signature(
        name: &'static str,
        signature: Signature,
        returns: DataType,
        body: Body,
    ) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            name,
            returns,
            body,
            signature,
            takes_nulls: false,
        }))
    }

    /// A function taking any number of arguments, called with NULLs too.
    fn variadic_with_nulls(name: &'static str, returns: DataType, body: Body) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            name,
            returns,
            body,
            signature: Signature::variadic_any(Volatility::Immutable),
            takes_nulls: true,
        }))
    }
}

impl ScalarUDFImpl for RowFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (n, columns) = super::arg_arrays(args)?;
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let values = columns
                .iter()
                .map(|c| ScalarValue::try_from_array(c, row))
                .collect::<Result<Vec<_>>>()?;
            let value = if !self.takes_nulls && values.iter().any(ScalarValue::is_null) {
                ScalarValue::try_from(&self.returns)?
            } else {
                (self.body)(&values)
            };
            out.push(if value.is_null() {
                ScalarValue::try_from(&self.returns)?
            } else {
                value
            });
        }
        super::result_column(out, &self.returns)
    }
}

/// The row-wise function ksqlDB calls `name`.
pub fn function(name: &str) -> Option<Arc<ScalarUDF>> {
    let string_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Some(match name {
        "URL_EXTRACT_HOST" => {
            RowFn::udf("url_extract_host", 1, DataType::Utf8, |a| text(url(a).host))
        }
        "URL_EXTRACT_PATH" => {
            RowFn::udf("url_extract_path", 1, DataType::Utf8, |a| text(url(a).path))
        }
        "URL_EXTRACT_QUERY" => RowFn::udf("url_extract_query", 1, DataType::Utf8, |a| {
            text(url(a).query)
        }),
        "URL_EXTRACT_FRAGMENT" => RowFn::udf("url_extract_fragment", 1, DataType::Utf8, |a| {
            text(url(a).fragment)
        }),
        "URL_EXTRACT_PROTOCOL" => RowFn::udf("url_extract_protocol", 1, DataType::Utf8, |a| {
            text(url(a).scheme)
        }),
        "URL_EXTRACT_PORT" => RowFn::udf("url_extract_port", 1, DataType::Int32, |a| {
            ScalarValue::Int32(url(a).port.and_then(|p| p.parse().ok()))
        }),
        "URL_EXTRACT_PARAMETER" => {
            RowFn::udf("url_extract_parameter", 2, DataType::Utf8, url_parameter)
        }
        "URL_DECODE_PARAM" => RowFn::udf("url_decode_param", 1, DataType::Utf8, |a| {
            text(arg(a, 0).map(|s| percent_decode(&s)))
        }),
        "URL_ENCODE_PARAM" => RowFn::udf("url_encode_param", 1, DataType::Utf8, |a| {
            text(arg(a, 0).map(|s| percent_encode(&s)))
        }),
        "EXTRACTJSONFIELD" => RowFn::udf("extractjsonfield", 2, DataType::Utf8, extract_json_field),
        "JSON_ARRAY_LENGTH" => RowFn::udf("json_array_length", 1, DataType::Int32, |a| {
            ScalarValue::Int32(json(a).and_then(|j| j.as_array().map(|v| v.len() as i32)))
        }),
        "IS_JSON_STRING" => RowFn::udf("is_json_string", 1, DataType::Boolean, |a| {
            ScalarValue::Boolean(Some(json(a).is_some()))
        }),
        "JSON_KEYS" => RowFn::udf("json_keys", 1, string_list, |a| {
            match json(a).as_ref().and_then(Json::as_object) {
                Some(o) => list(o.keys().cloned().collect()),
                None => ScalarValue::Null,
            }
        }),
        "LPAD" => RowFn::udf("lpad", 3, DataType::Utf8, |a| pad(a, true)),
        "RPAD" => RowFn::udf("rpad", 3, DataType::Utf8, |a| pad(a, false)),
        "LPAD_BYTES" => RowFn::udf("lpad_bytes", 3, DataType::Binary, |a| pad_bytes(a, true)),
        "RPAD_BYTES" => RowFn::udf("rpad_bytes", 3, DataType::Binary, |a| pad_bytes(a, false)),
        "CHR" => RowFn::udf("chr", 1, DataType::Utf8, chr),
        "INSTR" => RowFn::variadic("instr", DataType::Int32, instr_args),
        "INITCAP" => RowFn::udf("initcap", 1, DataType::Utf8, |a| {
            text(arg(a, 0).map(|s| initcap(&s)))
        }),
        "ARRAY_JOIN" => RowFn::variadic("array_join", DataType::Utf8, array_join),
        "SPLIT" => RowFn::udf("split", 2, string_list, split),
        other => return bytes_and_numbers(other),
    })
}

/// `GEO_DISTANCE(lat1, lon1, lat2, lon2[, 'KM'|'MI'])`: the great-circle distance
/// (haversine), in kilometers unless miles are asked for; NULL for coordinates out of range.
fn geo_distance(args: &[ScalarValue]) -> ScalarValue {
    let number = |i: usize| match args.get(i).map(|v| v.cast_to(&DataType::Float64)) {
        Some(Ok(ScalarValue::Float64(Some(x)))) => Some(x),
        _ => None,
    };
    let (Some(lat1), Some(lon1), Some(lat2), Some(lon2)) =
        (number(0), number(1), number(2), number(3))
    else {
        return ScalarValue::Float64(None);
    };
    if [lat1, lat2].iter().any(|l| l.abs() > 90.0) || [lon1, lon2].iter().any(|l| l.abs() > 180.0) {
        return ScalarValue::Float64(None);
    }
    let radius = match arg(args, 4).map(|u| u.to_ascii_uppercase()) {
        None => 6371.0,
        Some(unit) if unit.starts_with("KM") || unit.starts_with("KILOMET") => 6371.0,
        Some(unit) if unit.starts_with("MI") => 3959.0,
        Some(_) => return ScalarValue::Float64(None),
    };
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let half_dlat = (lat2 - lat1).to_radians() / 2.0;
    let half_dlon = (lon2 - lon1).to_radians() / 2.0;
    let a = half_dlat.sin().powi(2) + phi1.cos() * phi2.cos() * half_dlon.sin().powi(2);
    ScalarValue::Float64(Some(2.0 * radius * a.sqrt().asin()))
}

/// `TO_BYTES(text, encoding)`: `hex`, `utf8`, `ascii` or `base64` text as bytes.
fn to_bytes(args: &[ScalarValue]) -> ScalarValue {
    let (Some(text), Some(encoding)) = (arg(args, 0), arg(args, 1)) else {
        return ScalarValue::Binary(None);
    };
    ScalarValue::Binary(match encoding.to_ascii_lowercase().as_str() {
        "hex" => (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect(),
        "utf8" | "ascii" => Some(text.into_bytes()),
        "base64" => crate::format::avro::unbase64(&text),
        _ => None,
    })
}

/// `FROM_BYTES(bytes, encoding)`: bytes as `hex` (upper case), `utf8`, `ascii` or `base64`.
fn from_bytes(args: &[ScalarValue]) -> ScalarValue {
    let (Some(ScalarValue::Binary(Some(bytes))), Some(encoding)) = (args.first(), arg(args, 1))
    else {
        return ScalarValue::Utf8(None);
    };
    ScalarValue::Utf8(match encoding.to_ascii_lowercase().as_str() {
        "hex" => Some(bytes.iter().map(|b| format!("{b:02X}")).collect()),
        "utf8" | "ascii" => String::from_utf8(bytes.clone()).ok(),
        "base64" => Some(crate::format::avro::base64(bytes)),
        _ => None,
    })
}

/// The `N` bytes of `INT/BIGINT/DOUBLE_FROM_BYTES(bytes[, 'BIG_ENDIAN'|'LITTLE_ENDIAN'])`,
/// in big-endian order; NULL unless there are exactly `N`.
fn number_bytes<const N: usize>(args: &[ScalarValue]) -> Option<[u8; N]> {
    let Some(ScalarValue::Binary(Some(bytes))) = args.first() else {
        return None;
    };
    let mut array: [u8; N] = bytes.as_slice().try_into().ok()?;
    if arg(args, 1).is_some_and(|o| o.eq_ignore_ascii_case("LITTLE_ENDIAN")) {
        array.reverse();
    }
    Some(array)
}

/// `SUBSTRING(bytes, pos[, length])` as ksqlDB's: 1-based `pos`, negative from the end.
fn bytes_substring(args: &[ScalarValue]) -> ScalarValue {
    let (Some(ScalarValue::Binary(Some(bytes))), Some(pos)) = (args.first(), args.get(1)) else {
        return ScalarValue::Binary(None);
    };
    let int = |v: &ScalarValue| match v.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) => Some(n),
        _ => None,
    };
    let len = bytes.len() as i64;
    let Some(pos) = int(pos) else {
        return ScalarValue::Binary(None);
    };
    let start = if pos >= 0 {
        (pos - 1).clamp(0, len)
    } else {
        (len + pos).max(0)
    };
    let end = match args.get(2).map(int) {
        Some(Some(n)) => (start + n).min(len).max(start),
        Some(None) => return ScalarValue::Binary(None),
        None => len,
    };
    ScalarValue::Binary(Some(bytes[start as usize..end as usize].to_vec()))
}

/// Functions of bytes and numbers: `SUBSTRING` of bytes, `TO_BYTES`/`FROM_BYTES`, numbers
/// from bytes, `GEO_DISTANCE`.
fn bytes_and_numbers(name: &str) -> Option<Arc<ScalarUDF>> {
    Some(match name {
        "SUBSTRING_BYTES" => RowFn::variadic("substring_bytes", DataType::Binary, bytes_substring),
        "SPLIT_BYTES" => RowFn::udf(
            "split_bytes",
            2,
            DataType::List(Arc::new(Field::new("item", DataType::Binary, true))),
            split_bytes,
        ),
        // A NULL unit means kilometers.
        "GEO_DISTANCE" => {
            RowFn::variadic_with_nulls("geo_distance", DataType::Float64, geo_distance)
        }
        "TO_BYTES" => RowFn::udf("to_bytes", 2, DataType::Binary, to_bytes),
        "FROM_BYTES" => RowFn::udf("from_bytes", 2, DataType::Utf8, from_bytes),
        "INT_FROM_BYTES" => RowFn::variadic("int_from_bytes", DataType::Int32, |a| {
            ScalarValue::Int32(number_bytes::<4>(a).map(i32::from_be_bytes))
        }),
        "BIGINT_FROM_BYTES" => RowFn::variadic("bigint_from_bytes", DataType::Int64, |a| {
            ScalarValue::Int64(number_bytes::<8>(a).map(i64::from_be_bytes))
        }),
        "DOUBLE_FROM_BYTES" => RowFn::variadic("double_from_bytes", DataType::Float64, |a| {
            ScalarValue::Float64(number_bytes::<8>(a).map(f64::from_be_bytes))
        }),
        other => return time(other),
    })
}

/// Date-time functions over Java patterns (see [`crate::format::timestamp`]): a text that
/// does not match, or an unknown zone, gives NULL.
fn time(name: &str) -> Option<Arc<ScalarUDF>> {
    let timestamp = timestamp_type();
    Some(match name {
        "TIMESTAMPTOSTRING" => RowFn::variadic("timestamptostring", DataType::Utf8, format_time),
        "FORMAT_TIMESTAMP" => RowFn::variadic("format_timestamp", DataType::Utf8, format_time),
        "STRINGTOTIMESTAMP" => RowFn::variadic("stringtotimestamp", DataType::Int64, |a| {
            ScalarValue::Int64(parse_time(a))
        }),
        "PARSE_TIMESTAMP" => RowFn::variadic("parse_timestamp", timestamp, |a| {
            ScalarValue::TimestampMillisecond(parse_time(a), None)
        }),
        other => return dates(other),
    })
}

/// String functions of several arguments: `ELT`, `FIELD`, `ENCODE`.
fn strings(name: &str) -> Option<Arc<ScalarUDF>> {
    Some(match name {
        // ELT(n, a, b, ...): the n-th of the rest (1-based), NULL when out of range.
        "ELT" => RowFn::variadic_with_nulls("elt", DataType::Utf8, |a| {
            let n = match a.first().map(|n| n.cast_to(&DataType::Int64)) {
                Some(Ok(ScalarValue::Int64(Some(n)))) if n >= 1 => n as usize,
                _ => return ScalarValue::Utf8(None),
            };
            text(a.get(n).and_then(|v| arg(std::slice::from_ref(v), 0)))
        }),
        // FIELD(s, a, b, ...): the 1-based position of s among the rest, 0 if absent or NULL.
        "FIELD" => RowFn::variadic_with_nulls("field", DataType::Int32, |a| {
            let position = arg(a, 0)
                .and_then(|s| (1..a.len()).find(|i| arg(a, *i).as_deref() == Some(s.as_str())));
            ScalarValue::Int32(Some(position.map_or(0, |p| p as i32)))
        }),
        // ENCODE(s, from, to): text in one encoding (hex, utf8, ascii, base64) as another.
        "ENCODE" => RowFn::udf("encode", 3, DataType::Utf8, |a| {
            let (Some(s), Some(from), Some(to)) = (arg(a, 0), arg(a, 1), arg(a, 2)) else {
                return ScalarValue::Utf8(None);
            };
            let bytes = match from.to_ascii_lowercase().as_str() {
                "ascii" => s
                    .chars()
                    .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
                    .collect(),
                "utf8" => s.into_bytes(),
                _ => match to_bytes(&[ScalarValue::Utf8(Some(s)), ScalarValue::Utf8(Some(from))]) {
                    ScalarValue::Binary(Some(b)) => b,
                    _ => return ScalarValue::Utf8(None),
                },
            };
            text(match to.to_ascii_lowercase().as_str() {
                "hex" => Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
                "utf8" | "ascii" => Some(String::from_utf8_lossy(&bytes).into_owned()),
                "base64" => Some(crate::format::avro::base64(&bytes)),
                _ => None,
            })
        }),
        other => return json_functions(other),
    })
}

/// JSON text functions beyond paths: `JSON_ITEMS`, `JSON_CONCAT`, `JSON_ARRAY_CONTAINS`.
fn json_functions(name: &str) -> Option<Arc<ScalarUDF>> {
    let string_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Some(match name {
        // The elements of a JSON array, each as compact JSON text.
        "JSON_ITEMS" => RowFn::udf("json_items", 1, string_list, |a| {
            match json(a).as_ref().and_then(Json::as_array) {
                Some(items) => list(items.iter().map(Json::to_string).collect()),
                None => ScalarValue::Null,
            }
        }),
        // Objects merged (later keys win); otherwise one array of every value, arrays'
        // elements spliced in. A NULL or invalid argument gives NULL.
        "JSON_CONCAT" => RowFn::variadic("json_concat", DataType::Utf8, |a| {
            let parts: Vec<Json> = (0..a.len())
                .map(|i| json(&a[i..]))
                .collect::<Option<_>>()
                .unwrap_or_default();
            if parts.is_empty() {
                return ScalarValue::Utf8(None);
            }
            let merged = if parts.iter().all(Json::is_object) {
                let mut object = serde_json::Map::new();
                parts
                    .into_iter()
                    .filter_map(|p| match p {
                        Json::Object(o) => Some(o),
                        _ => None,
                    })
                    .for_each(|o| object.extend(o));
                Json::Object(object)
            } else {
                Json::Array(
                    parts
                        .into_iter()
                        .flat_map(|p| match p {
                            Json::Array(items) => items,
                            other => vec![other],
                        })
                        .collect(),
                )
            };
            text(Some(merged.to_string()))
        }),
        // Whether a JSON array holds the value (a string, number or boolean).
        "JSON_ARRAY_CONTAINS" => RowFn::udf("json_array_contains", 2, DataType::Boolean, |a| {
            let wanted = crate::format::json::from_scalar(&a[1]);
            ScalarValue::Boolean(Some(
                json(a)
                    .as_ref()
                    .and_then(Json::as_array)
                    .is_some_and(|items| items.contains(&wanted)),
            ))
        }),
        _ => return regexp(name),
    })
}

/// Date, time and zone functions: parsing and formatting DATE and TIME, epoch conversions,
/// `CONVERT_TZ`.
fn dates(name: &str) -> Option<Arc<ScalarUDF>> {
    Some(match name {
        "PARSE_DATE" => RowFn::variadic("parse_date", DataType::Date32, |a| {
            ScalarValue::Date32(parse_time(a).map(|ms| ms.div_euclid(DAY_MS) as i32))
        }),
        "STRINGTODATE" => RowFn::variadic("stringtodate", DataType::Int32, |a| {
            ScalarValue::Int32(parse_time(a).map(|ms| ms.div_euclid(DAY_MS) as i32))
        }),
        "FORMAT_DATE" | "DATETOSTRING" => {
            RowFn::variadic("format_date", DataType::Utf8, |a| match a.first() {
                Some(ScalarValue::Date32(Some(d)) | ScalarValue::Int32(Some(d))) => {
                    let mut args = a.to_vec();
                    args[0] = ScalarValue::Int64(Some(i64::from(*d) * DAY_MS));
                    format_time(&args)
                }
                _ => ScalarValue::Utf8(None),
            })
        }
        "FORMAT_TIME" => RowFn::variadic("format_time", DataType::Utf8, |a| match a.first() {
            Some(ScalarValue::Time32Millisecond(Some(ms))) => {
                let mut args = a.to_vec();
                args[0] = ScalarValue::Int64(Some(i64::from(*ms)));
                format_time(&args)
            }
            _ => ScalarValue::Utf8(None),
        }),
        "CONVERT_TZ" => RowFn::udf("convert_tz", 3, timestamp_type(), |a| {
            let ms = match &a[0] {
                ScalarValue::TimestampMillisecond(Some(ms), _) | ScalarValue::Int64(Some(ms)) => {
                    *ms
                }
                _ => return ScalarValue::TimestampMillisecond(None, None),
            };
            let converted = match (arg(a, 1), arg(a, 2)) {
                (Some(from), Some(to)) => crate::format::timestamp::convert_tz(ms, &from, &to).ok(),
                _ => None,
            };
            ScalarValue::TimestampMillisecond(converted, None)
        }),
        other => return epochs(other),
    })
}

/// Conversions between epoch numbers and dates and timestamps.
fn epochs(name: &str) -> Option<Arc<ScalarUDF>> {
    Some(match name {
        "FROM_UNIXTIME" => RowFn::udf("from_unixtime", 1, timestamp_type(), |a| {
            match a[0].cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(ms)) => ScalarValue::TimestampMillisecond(ms, None),
                _ => ScalarValue::TimestampMillisecond(None, None),
            }
        }),
        "UNIX_TIMESTAMP" => RowFn::variadic("unix_timestamp", DataType::Int64, |a| {
            ScalarValue::Int64(match a.first() {
                None => Some(crate::record::now_ms()),
                Some(ScalarValue::TimestampMillisecond(ms, _) | ScalarValue::Int64(ms)) => *ms,
                Some(_) => None,
            })
        }),
        "FROM_DAYS" => RowFn::udf("from_days", 1, DataType::Date32, |a| {
            match a[0].cast_to(&DataType::Int32) {
                Ok(ScalarValue::Int32(days)) => ScalarValue::Date32(days),
                _ => ScalarValue::Date32(None),
            }
        }),
        "UNIX_DATE" => RowFn::variadic("unix_date", DataType::Int32, |a| {
            ScalarValue::Int32(match a.first() {
                None => Some(crate::record::now_ms().div_euclid(DAY_MS) as i32),
                Some(ScalarValue::Date32(d)) => *d,
                Some(_) => None,
            })
        }),
        other => return strings(other),
    })
}

const DAY_MS: i64 = 86_400_000;

fn timestamp_type() -> DataType {
    DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None)
}

/// `REGEXP_*` functions. ksqlDB's patterns are Java's; Rust's `regex` reads the common
/// subset (no look-around or back-references: such a pattern gives NULL).
fn regexp(name: &str) -> Option<Arc<ScalarUDF>> {
    let string_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    Some(match name {
        "REGEXP_EXTRACT" => RowFn::variadic("regexp_extract", DataType::Utf8, |a| {
            let group = group_arg(a);
            text(with_regex(a, 0, |re, s| {
                re.captures(s)
                    .and_then(|c| c.get(group).map(|m| m.as_str().to_string()))
            }))
        }),
        "REGEXP_EXTRACT_ALL" => RowFn::variadic("regexp_extract_all", string_list, |a| {
            let group = group_arg(a);
            let found = with_regex(a, 0, |re, s| {
                Some(
                    re.captures_iter(s)
                        .filter_map(|c| c.get(group).map(|m| m.as_str().to_string()))
                        .collect(),
                )
            });
            found.map_or(ScalarValue::Null, list)
        }),
        "REGEXP_REPLACE" => RowFn::udf("regexp_replace", 3, DataType::Utf8, |a| {
            let replacement = arg(a, 2).unwrap_or_default();
            text(with_regex(a, 1, |re, s| {
                Some(re.replace_all(s, replacement.as_str()).into_owned())
            }))
        }),
        "REGEXP_SPLIT_TO_ARRAY" => RowFn::udf("regexp_split_to_array", 2, string_list, |a| {
            with_regex(a, 1, |re, s| Some(re.split(s).map(String::from).collect()))
                .map_or(ScalarValue::Null, list)
        }),
        _ => return None,
    })
}

/// The optional capture group argument (third) of the REGEXP_EXTRACT functions.
fn group_arg(args: &[ScalarValue]) -> usize {
    arg(args, 2).and_then(|g| g.parse().ok()).unwrap_or(0)
}

/// Patterns compiled once per thread (up to 64 of each kind), as rows repeat them.
type Compiled<T> = std::cell::RefCell<std::collections::HashMap<String, T>>;

thread_local! {
    static REGEXES: Compiled<regex::Regex> = Compiled::default();
    static JAVA_PATTERNS: Compiled<JavaPattern> = Compiled::default();
}

/// Applies `f` to `pattern` compiled by `compile`, from the per-thread `cache`.
fn with_compiled<P, T>(
    cache: &'static std::thread::LocalKey<Compiled<P>>,
    pattern: &str,
    compile: impl FnOnce(&str) -> Option<P>,
    f: impl FnOnce(&P) -> Option<T>,
) -> Option<T> {
    cache.with(|compiled| {
        let mut compiled = compiled.borrow_mut();
        if !compiled.contains_key(pattern) {
            if compiled.len() >= 64 {
                compiled.clear();
            }
            compiled.insert(pattern.to_string(), compile(pattern)?);
        }
        f(compiled.get(pattern)?)
    })
}

/// Applies `f` to the compiled pattern at argument `pattern` and the text at the other of the
/// first two arguments (ksqlDB puts the pattern first in REGEXP_EXTRACT, second elsewhere).
fn with_regex<T>(
    args: &[ScalarValue],
    pattern: usize,
    f: impl FnOnce(&regex::Regex, &str) -> Option<T>,
) -> Option<T> {
    let (pattern, input) = (arg(args, pattern)?, arg(args, 1 - pattern)?);
    with_compiled(
        &REGEXES,
        &pattern,
        |p| regex::Regex::new(p).ok(),
        |re| f(re, &input),
    )
}

/// Applies `f` to the Java date-time pattern at argument `i`.
fn with_java_pattern<T>(
    args: &[ScalarValue],
    i: usize,
    f: impl FnOnce(&JavaPattern) -> Option<T>,
) -> Option<T> {
    with_compiled(
        &JAVA_PATTERNS,
        &arg(args, i)?,
        |p| JavaPattern::new(p).ok(),
        f,
    )
}

/// `(ms or timestamp, pattern[, zone])` as text.
fn format_time(args: &[ScalarValue]) -> ScalarValue {
    let ms = match args.first() {
        Some(ScalarValue::Int64(Some(ms)) | ScalarValue::TimestampMillisecond(Some(ms), _)) => *ms,
        _ => return ScalarValue::Utf8(None),
    };
    let zone = arg(args, 2);
    text(with_java_pattern(args, 1, |p| {
        p.format(ms, zone.as_deref()).ok()
    }))
}

/// `(text, pattern[, zone])` as epoch milliseconds.
fn parse_time(args: &[ScalarValue]) -> Option<i64> {
    let (text, zone) = (arg(args, 0)?, arg(args, 2));
    with_java_pattern(args, 1, |p| p.parse_in(&text, zone.as_deref()).ok())
}

/// `INSTR(s, sub[, position[, occurrence]])`.
fn instr_args(a: &[ScalarValue]) -> ScalarValue {
    let number = |i: usize| arg(a, i).and_then(|n| n.parse::<i64>().ok());
    match (arg(a, 0), arg(a, 1)) {
        (Some(s), Some(sub)) => ScalarValue::Int32(Some(instr(
            &s,
            &sub,
            number(2).unwrap_or(1),
            number(3).unwrap_or(1),
        ))),
        _ => ScalarValue::Int32(None),
    }
}

/// ksqlDB's INSTR: the 1-based position of the `occurrence`-th `sub` in `s`, searching
/// forward from `position`, or backward from `position` characters before the end when it
/// is negative; 0 when there is none.
fn instr(s: &str, sub: &str, position: i64, occurrence: i64) -> i32 {
    let chars: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let len = chars.len() as i64;
    let at = |i: i64| {
        i >= 0
            && i + needle.len() as i64 <= len
            && chars[i as usize..i as usize + needle.len()] == needle[..]
    };
    let matches: Box<dyn Iterator<Item = i64>> = if position > 0 {
        Box::new((position - 1..len).filter(|i| at(*i)))
    } else if position < 0 {
        Box::new((0..=(len + position)).rev().filter(|i| at(*i)))
    } else {
        return 0;
    };
    matches
        .into_iter()
        .nth(occurrence.max(1) as usize - 1)
        .map_or(0, |i| (i + 1) as i32)
}

/// ksqlDB's INITCAP: words are separated by whitespace only; each word's first letter is
/// upper-cased and the rest lower-cased (`some_string` → `Some_string`).
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if c.is_whitespace() {
            start = true;
            out.push(c);
        } else if start {
            out.extend(c.to_uppercase());
            start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn arg(args: &[ScalarValue], i: usize) -> Option<String> {
    match args.get(i)? {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        other => Some(other.to_string()),
    }
}

fn text(value: Option<String>) -> ScalarValue {
    ScalarValue::Utf8(value)
}

fn list(items: Vec<String>) -> ScalarValue {
    list_of(
        items.into_iter().map(|s| ScalarValue::Utf8(Some(s))),
        &DataType::Utf8,
    )
}

/// An array of `items` of type `item`.
fn list_of(items: impl Iterator<Item = ScalarValue>, item: &DataType) -> ScalarValue {
    let scalars: Vec<ScalarValue> = items.collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&scalars, item))
}

/// The parts of a URL, as `java.net.URI` splits them.
#[derive(Default)]
struct Url {
    scheme: Option<String>,
    host: Option<String>,
    port: Option<String>,
    path: Option<String>,
    query: Option<String>,
    fragment: Option<String>,
}

fn url(args: &[ScalarValue]) -> Url {
    let Some(text) = arg(args, 0) else {
        return Url::default();
    };
    let mut parts = Url::default();
    let (rest, fragment) = match text.split_once('#') {
        Some((r, f)) => (r.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    parts.fragment = fragment;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r.to_string(), Some(q.to_string())),
        None => (rest, None),
    };
    parts.query = query;
    let rest = match rest.split_once("://") {
        Some((scheme, r)) => {
            parts.scheme = Some(scheme.to_string());
            r.to_string()
        }
        None => rest,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest, String::new()),
    };
    parts.path = Some(path);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    match host_port.rsplit_once(':') {
        Some((host, port)) => {
            parts.host = Some(host.to_string());
            parts.port = Some(port.to_string());
        }
        None => parts.host = (!host_port.is_empty()).then(|| host_port.to_string()),
    }
    parts
}

fn url_parameter(args: &[ScalarValue]) -> ScalarValue {
    let (Some(query), Some(name)) = (url(args).query, arg(args, 1)) else {
        return ScalarValue::Utf8(None);
    };
    text(
        query
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == name => Some(percent_decode(v)),
                None if pair == name => Some(String::new()),
                _ => None,
            }),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The argument read as JSON; as Jackson does, the first value counts and anything after
/// it is ignored.
fn json(args: &[ScalarValue]) -> Option<Json> {
    let text = arg(args, 0)?;
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Json>()
        .next()?
        .ok()
}

/// `EXTRACTJSONFIELD(json, '$.a.b[0]')`: the value at a JSON path, as text.
fn extract_json_field(args: &[ScalarValue]) -> ScalarValue {
    let (Some(mut value), Some(path)) = (json(args), arg(args, 1)) else {
        return ScalarValue::Utf8(None);
    };
    let path = path.trim_start_matches('$');
    for step in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = match step.find('[') {
            Some(i) => (&step[..i], &step[i..]),
            None => (step, ""),
        };
        if !name.is_empty() {
            value = match value.get(name.trim_matches(|c| c == '\'' || c == '"')) {
                Some(v) => v.clone(),
                None => return ScalarValue::Utf8(None),
            };
        }
        for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            let next = match index.parse::<usize>() {
                Ok(i) => value.get(i).cloned(),
                Err(_) => value
                    .get(index.trim_matches(|c| c == '\'' || c == '"'))
                    .cloned(),
            };
            match next {
                Some(v) => value = v,
                None => return ScalarValue::Utf8(None),
            }
        }
    }
    text(match value {
        Json::Null => None,
        Json::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// `LPAD(s, n, pad)` / `RPAD(s, n, pad)`: `s` padded (or cut) to `n` characters.
fn pad(args: &[ScalarValue], left: bool) -> ScalarValue {
    let (Some(s), Some(n), Some(fill)) = (arg(args, 0), arg(args, 1), arg(args, 2)) else {
        return ScalarValue::Utf8(None);
    };
    let Ok(n) = n.parse::<i64>() else {
        return ScalarValue::Utf8(None);
    };
    if n < 0 || (fill.is_empty() && (s.chars().count() as i64) < n) {
        return ScalarValue::Utf8(None);
    }
    let n = n as usize;
    let chars: Vec<char> = s.chars().collect();
    if chars.len() >= n {
        return text(Some(chars[..n].iter().collect()));
    }
    let padding: String = fill.chars().cycle().take(n - chars.len()).collect();
    text(Some(if left { padding + &s } else { s + &padding }))
}

/// `LPAD(bytes, n, pad)` / `RPAD(bytes, n, pad)`: `bytes` padded (or cut) to `n` bytes; NULL
/// for a negative `n` or an empty `pad` (even when no padding is needed, as in ksqlDB).
fn pad_bytes(args: &[ScalarValue], left: bool) -> ScalarValue {
    let (Some(ScalarValue::Binary(Some(b))), Some(n), Some(ScalarValue::Binary(Some(fill)))) =
        (args.first(), arg(args, 1), args.get(2))
    else {
        return ScalarValue::Binary(None);
    };
    let Some(n) = n.parse::<i64>().ok().and_then(|n| usize::try_from(n).ok()) else {
        return ScalarValue::Binary(None);
    };
    if fill.is_empty() {
        return ScalarValue::Binary(None);
    }
    if b.len() >= n {
        return ScalarValue::Binary(Some(b[..n].to_vec()));
    }
    let padding = fill.iter().copied().cycle().take(n - b.len());
    ScalarValue::Binary(Some(if left {
        padding.chain(b.iter().copied()).collect()
    } else {
        b.iter().copied().chain(padding).collect()
    }))
}

/// `CHR(code)`: the character of a decimal code point, or of a Java escape such as
/// `'\u004b'` (a surrogate pair in two escapes); NULL for anything else.
fn chr(args: &[ScalarValue]) -> ScalarValue {
    let decoded = match args.first() {
        Some(ScalarValue::Utf8(Some(escape))) => unicode_escapes(escape),
        Some(_) => arg(args, 0)
            .and_then(|code| code.parse::<u32>().ok())
            .and_then(char::from_u32)
            .map(String::from),
        None => None,
    };
    text(decoded)
}

/// The text of a string made only of `\uXXXX` escapes (UTF-16 code units).
fn unicode_escapes(s: &str) -> Option<String> {
    let units = s
        .split("\\u")
        .enumerate()
        .map(|(i, unit)| match i {
            0 if unit.is_empty() => Ok(None),
            0 => Err(()),
            _ if unit.len() == 4 => u16::from_str_radix(unit, 16).map(Some).map_err(|_| ()),
            _ => Err(()),
        })
        .collect::<Result<Vec<_>, ()>>()
        .ok()?;
    let units: Vec<u16> = units.into_iter().flatten().collect();
    if units.is_empty() {
        return None;
    }
    String::from_utf16(&units).ok()
}

/// `ARRAY_JOIN(array[, delimiter])`: the elements' text joined by `delimiter` (`,` by
/// default), a NULL element as `null`.
fn array_join(args: &[ScalarValue]) -> ScalarValue {
    let Some(ScalarValue::List(list)) = args.first() else {
        return ScalarValue::Utf8(None);
    };
    let delimiter = arg(args, 1).unwrap_or_else(|| ",".into());
    let values = list.value(0);
    let Ok(texts) = arrow::compute::cast(&values, &DataType::Utf8) else {
        return ScalarValue::Utf8(None);
    };
    let texts = texts.as_string::<i32>();
    let items: Vec<&str> = (0..texts.len())
        .map(|i| {
            if texts.is_null(i) {
                "null"
            } else {
                texts.value(i)
            }
        })
        .collect();
    text(Some(items.join(&delimiter)))
}

/// `SPLIT(s, delimiter)`: the parts between delimiters (every character for '').
fn split(args: &[ScalarValue]) -> ScalarValue {
    let (Some(s), Some(delimiter)) = (arg(args, 0), arg(args, 1)) else {
        return ScalarValue::Null;
    };
    if delimiter.is_empty() && !s.is_empty() {
        return list(s.chars().map(String::from).collect());
    }
    if delimiter.is_empty() {
        return list(vec![String::new()]);
    }
    list(s.split(delimiter.as_str()).map(String::from).collect())
}

/// `SPLIT(bytes, delimiter)`: the pieces between delimiters (every byte for an empty one).
fn split_bytes(args: &[ScalarValue]) -> ScalarValue {
    let (Some(ScalarValue::Binary(Some(bytes))), Some(ScalarValue::Binary(Some(delimiter)))) =
        (args.first(), args.get(1))
    else {
        return ScalarValue::Null;
    };
    let pieces: Vec<Vec<u8>> = if delimiter.is_empty() && bytes.is_empty() {
        vec![Vec::new()]
    } else if delimiter.is_empty() {
        bytes.iter().map(|b| vec![*b]).collect()
    } else {
        let (mut pieces, mut start, mut i) = (Vec::new(), 0, 0);
        while i + delimiter.len() <= bytes.len() {
            if bytes[i..].starts_with(delimiter) {
                pieces.push(bytes[start..i].to_vec());
                i += delimiter.len();
                start = i;
            } else {
                i += 1;
            }
        }
        pieces.push(bytes[start..].to_vec());
        pieces
    };
    list_of(
        pieces.into_iter().map(|p| ScalarValue::Binary(Some(p))),
        &DataType::Binary,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ScalarValue {
        ScalarValue::Utf8(Some(v.into()))
    }

    #[test]
    fn urls_split_like_java() {
        let u = url(&[s("http://test@confluent.io:8080/nested/path?q=2#frag")]);
        assert_eq!(u.host.as_deref(), Some("confluent.io"));
        assert_eq!(u.port.as_deref(), Some("8080"));
        assert_eq!(u.path.as_deref(), Some("/nested/path"));
        assert_eq!(u.query.as_deref(), Some("q=2"));
        assert_eq!(u.fragment.as_deref(), Some("frag"));
        assert_eq!(percent_decode("url%20encoded"), "url encoded");
    }

    #[test]
    fn json_paths_and_padding() {
        let doc = s(r#"{"a": {"b": [1, {"c": "x"}]}}"#);
        assert_eq!(extract_json_field(&[doc.clone(), s("$.a.b[1].c")]), s("x"));
        assert_eq!(extract_json_field(&[doc, s("$.a.b[0]")]), s("1"));
        let n = ScalarValue::Int32(Some(7));
        assert_eq!(pad(&[s("foo"), n.clone(), s("Bar")], true), s("BarBfoo"));
        assert_eq!(pad(&[s("foo"), n, s("Bar")], false), s("fooBarB"));
    }
}
