//! The staffing plan: for each hour, the counters a service needs so that 90% of its
//! customers wait no longer than its target (`target_wait_min`), by Erlang C (M/M/N) from
//! the forecast arrivals of that hour and the service's measured mean service time.

/// The share of customers who must be called within the target wait.
pub const SERVED_WITHIN: f64 = 0.9;

/// The most counters a plan proposes for one service in one hour.
pub const MAX_COUNTERS: u32 = 60;

/// Erlang C: the probability that a customer waits at all, with `n` counters and an
/// offered load of `a` erlangs (arrivals per second × mean service seconds). 1 when the
/// counters cannot keep up.
pub fn erlang_c(n: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if f64::from(n) <= a {
        return 1.0;
    }
    // Erlang B by its stable recursion, then C from B.
    let mut b = 1.0;
    for k in 1..=n {
        b = a * b / (f64::from(k) + a * b);
    }
    let n = f64::from(n);
    n * b / (n - a * (1.0 - b))
}

/// The probability that a customer waits longer than `target_s`.
pub fn p_wait_over(n: u32, a: f64, mean_service_s: f64, target_s: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    let c = erlang_c(n, a);
    if c >= 1.0 {
        return 1.0;
    }
    c * (-(f64::from(n) - a) * target_s / mean_service_s).exp()
}

/// Counters needed so that at least [`SERVED_WITHIN`] of the customers of an hour with
/// `arrivals_per_hour` are called within `target_s` (0 when nobody comes).
pub fn counters_needed(arrivals_per_hour: f64, mean_service_s: f64, target_s: f64) -> u32 {
    if arrivals_per_hour <= 0.0 || mean_service_s <= 0.0 {
        return 0;
    }
    let a = arrivals_per_hour / 3600.0 * mean_service_s;
    (1..=MAX_COUNTERS)
        .find(|&n| p_wait_over(n, a, mean_service_s, target_s) <= 1.0 - SERVED_WITHIN)
        .unwrap_or(MAX_COUNTERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_published_values() {
        // Textbook: a = 2 erlangs, 3 servers → C = 4/9; a = 10, 12 servers → 0.4494.
        assert!((erlang_c(3, 2.0) - 4.0 / 9.0).abs() < 1e-9);
        assert!((erlang_c(12, 10.0) - 0.4494).abs() < 1e-3);
        assert_eq!(erlang_c(2, 2.0), 1.0);
        assert_eq!(erlang_c(1, 0.0), 0.0);
    }

    #[test]
    fn counters_grow_with_arrivals_and_shrink_with_a_longer_target() {
        // 30 customers an hour, 5 minutes each: 2.5 erlangs.
        let busy = counters_needed(30.0, 300.0, 600.0);
        assert!(busy >= 3, "{busy}");
        assert!(counters_needed(60.0, 300.0, 600.0) > busy);
        assert!(counters_needed(30.0, 300.0, 3600.0) <= busy);
        assert_eq!(counters_needed(0.0, 300.0, 600.0), 0);
        assert_eq!(counters_needed(1.0, 300.0, 600.0), 1);
    }

    /// A discrete-event simulation of one service's queue through a day: Poisson arrivals
    /// at each hour's rate, exponential service, first come first served, `counters[h]`
    /// counters open in hour `h` (a service in progress runs past the hour). Returns each
    /// customer's (arrival hour, wait in seconds).
    fn simulate_day(
        rates: &[f64; 24],
        counters: &[u32; 24],
        service_s: f64,
        rng: &mut rand::rngs::StdRng,
    ) -> Vec<(usize, f64)> {
        use rand::Rng;
        let exp = |rng: &mut rand::rngs::StdRng, mean: f64| -> f64 {
            -mean * rng.r#gen::<f64>().max(1e-12).ln()
        };
        let max = *counters.iter().max().unwrap_or(&0) as usize;
        let mut free_at = vec![0.0f64; max];
        // The earliest time from `t` at which counter `k` is open.
        let open_from = |k: usize, t: f64| -> Option<f64> {
            let mut t = t;
            loop {
                let h = (t / 3600.0) as usize;
                if h >= 24 {
                    return None;
                }
                if (counters[h] as usize) > k {
                    return Some(t);
                }
                t = (h + 1) as f64 * 3600.0;
            }
        };
        let mut out = Vec::new();
        for (h, rate) in rates.iter().enumerate() {
            if *rate <= 0.0 {
                continue;
            }
            let mut t = h as f64 * 3600.0;
            loop {
                t += exp(rng, 3600.0 / rate);
                if t >= (h + 1) as f64 * 3600.0 {
                    break;
                }
                let best = (0..max)
                    .filter_map(|k| open_from(k, t.max(free_at[k])).map(|s| (s, k)))
                    .min_by(|a, b| a.0.total_cmp(&b.0));
                let Some((start, k)) = best else {
                    out.push((h, f64::INFINITY));
                    continue;
                };
                free_at[k] = start + exp(rng, service_s);
                out.push((h, start - t));
            }
        }
        out
    }

    #[test]
    fn the_planned_counters_keep_the_simulated_p90_wait_within_target_in_90_percent_of_hours() {
        use rand::SeedableRng;
        // A personal-banking day: 160 customers with a morning and an afternoon peak, five
        // minutes each, a 15-minute target; and a quieter corporate day, ten minutes each.
        let profile = [
            (9, 0.12),
            (10, 0.17),
            (11, 0.14),
            (12, 0.07),
            (13, 0.09),
            (14, 0.15),
            (15, 0.13),
            (16, 0.09),
            (17, 0.04),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        for (daily, service_s, target_s) in [(160.0, 300.0, 900.0), (40.0, 600.0, 600.0)] {
            let mut rates = [0.0; 24];
            let mut counters = [0u32; 24];
            for (h, share) in profile {
                rates[h] = daily * share;
                counters[h] = counters_needed(rates[h], service_s, target_s);
            }
            let (mut hours, mut within) = (0, 0);
            for _ in 0..300 {
                let waits = simulate_day(&rates, &counters, service_s, &mut rng);
                for (h, _) in profile {
                    let mut w: Vec<f64> = waits
                        .iter()
                        .filter(|(ah, _)| *ah == h)
                        .map(|(_, w)| *w)
                        .collect();
                    if w.is_empty() {
                        continue;
                    }
                    w.sort_by(f64::total_cmp);
                    let p90 = w[((w.len() as f64 * 0.9).ceil() as usize).max(1) - 1];
                    hours += 1;
                    within += usize::from(p90 <= target_s);
                }
            }
            let share = within as f64 / hours as f64;
            assert!(
                share >= 0.9,
                "{daily} a day, {service_s} s each: p90 within {target_s} s in {:.1}% of {hours} hours (plan {counters:?})",
                share * 100.0
            );
        }
    }
}
