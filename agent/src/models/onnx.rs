//! Free the size of a model's image input. Detectors are often exported with a fixed input
//! (YuNet: `[1, 3, 640, 640]`) though their graph works at any size; ONNX Runtime refuses
//! other sizes while the file declares one. [`free_input_size`] rewrites the declared
//! shapes in the protobuf and copies every other byte of the file as it is.
//!
//! Only the fields on the path to the declared shapes are read (protobuf wire format,
//! field numbers from `onnx.proto`): `ModelProto.graph` (7) → `GraphProto.input` (11),
//! `.output` (12), `.value_info` (13) → `ValueInfoProto.name` (1), `.type` (2) →
//! `TypeProto.tensor_type` (1) → `Tensor.shape` (2) → `TensorShapeProto.dim` (1) →
//! `Dimension.dim_value` (1) / `.dim_param` (2).

use super::ModelError;

const MODEL_GRAPH: u32 = 7;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const VALUE_NAME: u32 = 1;
const VALUE_TYPE: u32 = 2;
const TYPE_TENSOR: u32 = 1;
const TENSOR_SHAPE: u32 = 2;
const SHAPE_DIM: u32 = 1;
const DIM_PARAM: u32 = 2;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const BYTES: u8 = 2;
const FIXED32: u8 = 5;

/// Declare the input `input`'s dimensions from the third on (height and width of NCHW) and
/// every output dimension but the first (the batch) as free, and drop the declared shapes
/// of intermediate values, which were inferred for the fixed size. ONNX Runtime infers
/// them again for each size it is given.
pub fn free_input_size(model: &[u8], input: &str) -> Result<Vec<u8>, ModelError> {
    let mut found = false;
    let mut free = 0usize;
    let out = within(model, MODEL_GRAPH, |graph| {
        rewrite(graph, |n, body, out| match n {
            GRAPH_VALUE_INFO => Ok(true),
            GRAPH_INPUT if name(body)? == input => {
                found = true;
                put_bytes(out, n, &free_dims(body, 2, &mut free)?);
                Ok(true)
            }
            GRAPH_OUTPUT => {
                put_bytes(out, n, &free_dims(body, 1, &mut free)?);
                Ok(true)
            }
            _ => Ok(false),
        })
    })?;
    if !found {
        return Err(malformed(format!("the model has no input `{input}`")));
    }
    Ok(out)
}

fn malformed(why: impl std::fmt::Display) -> ModelError {
    ModelError::Runtime(format!("cannot read the model's declared shapes: {why}"))
}

/// The `name` of a `ValueInfoProto`.
fn name(value_info: &[u8]) -> Result<String, ModelError> {
    let mut name = String::new();
    rewrite(value_info, |n, body, _| {
        if n == VALUE_NAME {
            name = String::from_utf8_lossy(body).into_owned();
        }
        Ok(false)
    })?;
    Ok(name)
}

/// A `ValueInfoProto` whose tensor dimensions from index `from` on are named, each with
/// its own name (dimensions that share a name must be equal).
fn free_dims(value_info: &[u8], from: usize, free: &mut usize) -> Result<Vec<u8>, ModelError> {
    within(value_info, VALUE_TYPE, |ty| {
        within(ty, TYPE_TENSOR, |tensor| {
            within(tensor, TENSOR_SHAPE, |shape| {
                let mut i = 0;
                rewrite(shape, |n, _, out| {
                    if n != SHAPE_DIM {
                        return Ok(false);
                    }
                    i += 1;
                    if i <= from {
                        return Ok(false);
                    }
                    *free += 1;
                    let mut dim = Vec::new();
                    put_bytes(&mut dim, DIM_PARAM, format!("free_{free}").as_bytes());
                    put_bytes(out, n, &dim);
                    Ok(true)
                })
            })
        })
    })
}

/// Copy a message with every field number `n` (a message) replaced by `f` of it.
fn within(
    msg: &[u8],
    n: u32,
    mut f: impl FnMut(&[u8]) -> Result<Vec<u8>, ModelError>,
) -> Result<Vec<u8>, ModelError> {
    rewrite(msg, |m, body, out| {
        if m != n {
            return Ok(false);
        }
        put_bytes(out, n, &f(body)?);
        Ok(true)
    })
}

/// Copy a message field by field; `f(number, body, out)` sees every length-delimited field
/// and returns whether it wrote (or dropped) the field itself. Every other field is copied
/// byte for byte.
fn rewrite(
    msg: &[u8],
    mut f: impl FnMut(u32, &[u8], &mut Vec<u8>) -> Result<bool, ModelError>,
) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::with_capacity(msg.len());
    let mut at = 0;
    while at < msg.len() {
        let start = at;
        let key = varint(msg, &mut at)?;
        let (n, wire) = ((key >> 3) as u32, (key & 7) as u8);
        let body = match wire {
            VARINT => {
                varint(msg, &mut at)?;
                None
            }
            FIXED64 | FIXED32 => {
                at += if wire == FIXED64 { 8 } else { 4 };
                None
            }
            BYTES => {
                let len = usize::try_from(varint(msg, &mut at)?)
                    .map_err(|_| malformed("a field longer than memory"))?;
                let end = at
                    .checked_add(len)
                    .filter(|e| *e <= msg.len())
                    .ok_or_else(|| malformed("a field runs past the end"))?;
                let body = &msg[at..end];
                at = end;
                Some(body)
            }
            other => return Err(malformed(format!("wire type {other} of field {n}"))),
        };
        if at > msg.len() {
            return Err(malformed("a field runs past the end"));
        }
        let handled = match body {
            Some(body) => f(n, body, &mut out)?,
            None => false,
        };
        if !handled {
            out.extend_from_slice(&msg[start..at]);
        }
    }
    Ok(out)
}

fn varint(buf: &[u8], at: &mut usize) -> Result<u64, ModelError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*at)
            .ok_or_else(|| malformed("a number runs past the end"))?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(malformed("a number longer than 64 bits"))
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, n: u32, body: &[u8]) {
    put_varint(out, (u64::from(n) << 3) | u64::from(BYTES));
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `ValueInfoProto` named `name` with dimensions `dims` (values).
    fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut shape = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            put_varint(&mut dim, 1 << 3);
            put_varint(&mut dim, *d);
            put_bytes(&mut shape, SHAPE_DIM, &dim);
        }
        let mut tensor = Vec::new();
        put_varint(&mut tensor, 1 << 3); // elem_type = FLOAT
        put_varint(&mut tensor, 1);
        put_bytes(&mut tensor, TENSOR_SHAPE, &shape);
        let mut ty = Vec::new();
        put_bytes(&mut ty, TYPE_TENSOR, &tensor);
        let mut vi = Vec::new();
        put_bytes(&mut vi, VALUE_NAME, name.as_bytes());
        put_bytes(&mut vi, VALUE_TYPE, &ty);
        vi
    }

    /// The body of the (last) field `n` of a message.
    fn field(msg: &[u8], n: u32) -> Vec<u8> {
        let mut inner = Vec::new();
        rewrite(msg, |m, body, _| {
            if m == n {
                inner = body.to_vec();
            }
            Ok(false)
        })
        .unwrap();
        inner
    }

    /// Dimensions of a `ValueInfoProto`: `Ok(value)` or `Err(param)`.
    fn dims(vi: &[u8]) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let shape = field(&field(&field(vi, VALUE_TYPE), TYPE_TENSOR), TENSOR_SHAPE);
        rewrite(&shape, |_, dim, _| {
            let mut at = 0;
            let key = varint(dim, &mut at).unwrap();
            out.push(if key >> 3 == 1 {
                Ok(varint(dim, &mut at).unwrap())
            } else {
                let len = varint(dim, &mut at).unwrap() as usize;
                Err(String::from_utf8(dim[at..at + len].to_vec()).unwrap())
            });
            Ok(false)
        })
        .unwrap();
        out
    }

    fn graph_fields(model: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        rewrite(&field(model, MODEL_GRAPH), |n, body, _| {
            out.push((n, body.to_vec()));
            Ok(false)
        })
        .unwrap();
        out
    }

    fn model() -> Vec<u8> {
        let mut graph = Vec::new();
        put_bytes(&mut graph, 2, b"graph name");
        put_bytes(
            &mut graph,
            GRAPH_INPUT,
            &value_info("input", &[1, 3, 640, 640]),
        );
        put_bytes(
            &mut graph,
            GRAPH_OUTPUT,
            &value_info("cls_8", &[1, 6400, 1]),
        );
        put_bytes(
            &mut graph,
            GRAPH_VALUE_INFO,
            &value_info("419", &[1, 16, 320, 320]),
        );
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version = 6
        put_varint(&mut m, 6);
        put_bytes(&mut m, MODEL_GRAPH, &graph);
        m.extend_from_slice(&[(9 << 3) | FIXED32, 1, 2, 3, 4]);
        m
    }

    #[test]
    fn the_input_size_and_the_output_lengths_become_free_and_the_rest_stays() {
        let freed = free_input_size(&model(), "input").unwrap();
        let fields = graph_fields(&freed);
        let numbers: Vec<u32> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            numbers,
            [2, GRAPH_INPUT, GRAPH_OUTPUT],
            "value_info dropped"
        );
        assert_eq!(fields[0].1, b"graph name");
        assert_eq!(
            dims(&fields[1].1),
            [Ok(1), Ok(3), Err("free_1".into()), Err("free_2".into())]
        );
        assert_eq!(
            dims(&fields[2].1),
            [Ok(1), Err("free_3".into()), Err("free_4".into())]
        );
        assert_eq!(name(&fields[2].1).unwrap(), "cls_8");
        assert!(freed.starts_with(&[1 << 3, 6]), "ir_version kept");
        assert!(
            freed.ends_with(&[(9 << 3) | FIXED32, 1, 2, 3, 4]),
            "unknown field kept"
        );
    }

    #[test]
    fn a_missing_input_or_a_cut_file_is_an_error() {
        let err = free_input_size(&model(), "image").unwrap_err();
        assert!(err.to_string().contains("no input `image`"), "{err}");
        let m = model();
        for cut in [m.len() - 1, m.len() / 2, 3] {
            assert!(free_input_size(&m[..cut], "input").is_err(), "cut at {cut}");
        }
        assert!(free_input_size(&[0x80; 11], "input").is_err());
    }
}
