//! Metric families kept as one copy per proxy worker and summed when `/metrics` is scraped.
//!
//! Every proxied request bumps a handful of counters and histograms. Shared by all workers,
//! each of those atomics would move between CPU cores on nearly every request; with a copy per
//! worker each core counts into memory of its own, and the sum is made once per scrape instead.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Metric, MetricFamily, MetricType};

/// One metric family registered once, counted into by several copies (shards) of the same
/// collector: the first made with the family, one more per extra proxy worker.
pub struct Sharded<C> {
    inner: Arc<Shards<C>>,
}

struct Shards<C> {
    first: C,
    more: Mutex<Vec<C>>,
}

impl<C> Clone for Sharded<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Collector> Sharded<C> {
    /// A family whose first shard is `first`.
    pub fn new(first: C) -> Self {
        Self {
            inner: Arc::new(Shards {
                first,
                more: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Adds `shard`, a collector with the same name, help and labels as the first, to the sum.
    pub fn add(&self, shard: C) {
        self.inner
            .more
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(shard);
    }
}

impl<C: Collector + 'static> Collector for Sharded<C> {
    fn desc(&self) -> Vec<&Desc> {
        self.inner.first.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.inner.first.collect();
        let more = self
            .inner
            .more
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for shard in more.iter() {
            for family in shard.collect() {
                merge_family(&mut families, family);
            }
        }
        families
    }
}

/// Adds `family`'s metrics into the family of the same name in `families`.
fn merge_family(families: &mut Vec<MetricFamily>, mut family: MetricFamily) {
    let Some(into) = families.iter_mut().find(|f| f.name() == family.name()) else {
        families.push(family);
        return;
    };
    let kind = family.get_field_type();
    for metric in family.take_metric() {
        match into
            .mut_metric()
            .iter_mut()
            .find(|m| m.get_label() == metric.get_label())
        {
            Some(sum) => add_metric(sum, &metric, kind),
            None => into.mut_metric().push(metric),
        }
    }
}

/// `sum += metric` for one label set: counters, gauges and histograms (bucket by bucket; every
/// shard has the same bounds).
fn add_metric(sum: &mut Metric, metric: &Metric, kind: MetricType) {
    match kind {
        MetricType::COUNTER => {
            let mut counter = sum.get_counter().clone();
            counter.set_value(counter.get_value() + metric.get_counter().get_value());
            sum.set_counter(counter);
        }
        MetricType::GAUGE => {
            let mut gauge = sum.get_gauge().clone();
            gauge.set_value(gauge.get_value() + metric.get_gauge().get_value());
            sum.set_gauge(gauge);
        }
        MetricType::HISTOGRAM => {
            let mut histogram = sum.get_histogram().clone();
            let other = metric.get_histogram();
            histogram.set_sample_count(histogram.get_sample_count() + other.get_sample_count());
            histogram.set_sample_sum(histogram.get_sample_sum() + other.get_sample_sum());
            let mut buckets = histogram.get_bucket().to_vec();
            for (bucket, add) in buckets.iter_mut().zip(other.get_bucket()) {
                bucket.set_cumulative_count(bucket.cumulative_count() + add.cumulative_count());
            }
            histogram.set_bucket(buckets);
            sum.set_histogram(histogram);
        }
        // dripgate shards no summaries or untyped metrics.
        MetricType::SUMMARY | MetricType::UNTYPED => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use prometheus::{
        Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
        TextEncoder,
    };

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .expect("encode");
        String::from_utf8(out).expect("utf-8")
    }

    /// Registers in `registry` one family made of the shards `first` and `second`.
    fn register_summed<C: Collector + Clone + 'static>(registry: &Registry, first: &C, second: &C) {
        let family = Sharded::new(first.clone());
        family.add(second.clone());
        registry.register(Box::new(family)).expect("register");
    }

    fn counters() -> IntCounterVec {
        IntCounterVec::new(Opts::new("requests_total", "Requests."), &["status"]).expect("vec")
    }

    #[test]
    fn shards_are_summed_by_label_set_and_labels_one_shard_has_are_kept() {
        let (first, second) = (counters(), counters());
        let registry = Registry::new();
        register_summed(&registry, &first, &second);
        first.with_label_values(&["200"]).inc_by(3);
        second.with_label_values(&["200"]).inc_by(4);
        second.with_label_values(&["502"]).inc();
        let text = text(&registry);
        assert!(
            text.contains("requests_total{status=\"200\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("requests_total{status=\"502\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn histograms_and_gauges_are_summed() {
        let opts = || HistogramOpts::new("latency_seconds", "Latency.").buckets(vec![0.1, 1.0]);
        let (h1, h2) = (
            Histogram::with_opts(opts()).expect("h"),
            Histogram::with_opts(opts()).expect("h"),
        );
        let (g1, g2) = (
            IntGauge::new("in_flight", "In flight.").expect("g"),
            IntGauge::new("in_flight", "In flight.").expect("g"),
        );
        let registry = Registry::new();
        register_summed(&registry, &h1, &h2);
        register_summed(&registry, &g1, &g2);
        h1.observe(0.05);
        h2.observe(0.5);
        h2.observe(5.0);
        g1.inc();
        g2.add(2);
        let text = text(&registry);
        for line in [
            "latency_seconds_bucket{le=\"0.1\"} 1\n",
            "latency_seconds_bucket{le=\"1\"} 2\n",
            "latency_seconds_bucket{le=\"+Inf\"} 3\n",
            "latency_seconds_sum 5.55\n",
            "latency_seconds_count 3\n",
            "in_flight 3\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_labelled_histogram_family_sums_per_label() {
        let vec = || {
            HistogramVec::new(
                HistogramOpts::new("route_seconds", "By route.").buckets(vec![1.0]),
                &["route"],
            )
            .expect("vec")
        };
        let (first, second) = (vec(), vec());
        let registry = Registry::new();
        register_summed(&registry, &first, &second);
        first.with_label_values(&["proxy"]).observe(0.5);
        second.with_label_values(&["proxy"]).observe(0.5);
        second.with_label_values(&["signin"]).observe(2.0);
        let text = text(&registry);
        assert!(
            text.contains("route_seconds_count{route=\"proxy\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("route_seconds_bucket{route=\"signin\",le=\"1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("route_seconds_count{route=\"signin\"} 1\n"),
            "{text}"
        );
    }
}
