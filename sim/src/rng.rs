//! A small seeded generator and the distributions the plans draw from, so a
//! seed alone fixes the call plan and the churn plan on every platform.

use std::time::Duration;

/// SplitMix64: tiny, fast, and the same stream everywhere for a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// An independent stream derived from this seed and a label.
    pub fn fork(seed: u64, label: u64) -> Rng {
        let mut r = Rng::new(seed.wrapping_add(label.wrapping_mul(0xD1B5_4A32_D192_ED03)));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so `ln` is finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() <= p
    }
}

/// Session and downtime distributions, each given by its median.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistKind {
    /// Memoryless.
    Exponential,
    /// Heavy-ish tail with shape k (default 0.5, as measured for P2P sessions).
    Weibull,
    /// Heavy tail with shape alpha (default 1.5).
    Pareto,
}

impl std::str::FromStr for DistKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exponential" | "exp" => Ok(DistKind::Exponential),
            "weibull" => Ok(DistKind::Weibull),
            "pareto" => Ok(DistKind::Pareto),
            _ => Err(format!(
                "{s:?} is not a distribution; use exponential, weibull or pareto"
            )),
        }
    }
}

/// A distribution of durations with a given median.
#[derive(Debug, Clone, Copy)]
pub struct Dist {
    /// Family.
    pub kind: DistKind,
    /// Median.
    pub median: Duration,
    /// Shape (Weibull k, Pareto alpha); ignored for exponential.
    pub shape: f64,
}

impl Dist {
    /// The default shape of a family.
    pub fn default_shape(kind: DistKind) -> f64 {
        match kind {
            DistKind::Exponential => 1.0,
            DistKind::Weibull => 0.5,
            DistKind::Pareto => 1.5,
        }
    }

    /// One sample, by inverse transform.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        let m = self.median.as_secs_f64();
        let u = rng.unit();
        let x = match self.kind {
            DistKind::Exponential => -u.ln() * m / std::f64::consts::LN_2,
            DistKind::Weibull => {
                let k = self.shape;
                let scale = m / std::f64::consts::LN_2.powf(1.0 / k);
                scale * (-u.ln()).powf(1.0 / k)
            }
            DistKind::Pareto => {
                let a = self.shape;
                let xm = m / 2f64.powf(1.0 / a);
                xm / u.powf(1.0 / a)
            }
        };
        Duration::from_secs_f64(x.clamp(0.05, 1e7))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::fork(7, 1).next_u64(), Rng::fork(7, 2).next_u64());
    }

    #[test]
    fn samples_have_the_requested_median() {
        for kind in [DistKind::Exponential, DistKind::Weibull, DistKind::Pareto] {
            let d = Dist {
                kind,
                median: Duration::from_secs(30),
                shape: Dist::default_shape(kind),
            };
            let mut rng = Rng::new(1);
            let mut v: Vec<f64> = (0..20_001)
                .map(|_| d.sample(&mut rng).as_secs_f64())
                .collect();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            assert!((27.0..33.0).contains(&median), "{kind:?}: median {median}");
        }
    }
}
