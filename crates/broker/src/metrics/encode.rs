//! Families gathered at scrape time, rendered with prometheus-client's
//! OpenMetrics text encoder through one `Collector` (no stored registry: the
//! values live in the broker's own atomics and state).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::HistogramSnapshot;

#[derive(Debug)]
pub enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    Histogram(HistogramSnapshot),
}

pub type Labels = Vec<(&'static str, String)>;

/// One metric family. `name` has neither the unit nor `_total`: the encoder
/// appends them (`herald_kafka_requests` + counter = `herald_kafka_requests_total`).
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<Unit>,
    pub kind: MetricType,
    pub samples: Vec<(Labels, Value)>,
}

impl Family {
    pub fn new(kind: MetricType, name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            help,
            unit: None,
            kind,
            samples: Vec::new(),
        }
    }
    pub fn counter(name: &'static str, help: &'static str) -> Family {
        Family::new(MetricType::Counter, name, help)
    }
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Family::new(MetricType::Gauge, name, help)
    }
    pub fn histogram(name: &'static str, help: &'static str) -> Family {
        Family::new(MetricType::Histogram, name, help)
    }
    pub fn unit(mut self, unit: Unit) -> Family {
        self.unit = Some(unit);
        self
    }
    pub fn with(mut self, labels: Labels, value: Value) -> Family {
        self.samples.push((labels, value));
        self
    }
    pub fn push(&mut self, labels: Labels, value: Value) {
        self.samples.push((labels, value));
    }
}

#[derive(Debug)]
struct Gathered(Vec<Family>);

impl Collector for Gathered {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let mut metric = encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
            for (labels, value) in &f.samples {
                let mut m = metric.encode_family(labels)?;
                match value {
                    Value::Counter(v) => m.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Value::CounterF(v) => m.encode_counter::<NoLabelSet, _, f64>(v, None)?,
                    Value::Gauge(v) => m.encode_gauge(v)?,
                    Value::GaugeF(v) => m.encode_gauge(v)?,
                    Value::Histogram(h) => {
                        m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?
                    }
                }
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of `families`, ending with `# EOF`.
pub fn to_text(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Gathered(families)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
        // Writing to a String cannot fail; a label the encoder refuses could.
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}
