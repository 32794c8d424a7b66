import type { RenderStatus } from "@cpm/proto";
import { Counter, Histogram, LATENCY_BUCKETS, metricSet, scrapedGauge, type Registry } from "@cpm/grpc-kit";
import { CaddyRejectedError, CaddyUnreachableError } from "./caddy.ts";
import type { CaddyAdminApi } from "./reconciler.ts";

/** Why a load failed, the `reason` label: Caddy refused the config, or could not be reached. */
export function loadFailureReason(err: unknown): "rejected" | "unreachable" | "error" {
  if (err instanceof CaddyRejectedError) return "rejected";
  if (err instanceof CaddyUnreachableError) return "unreachable";
  return "error";
}

/**
 * The renderer's own metrics: every POST /load to Caddy (count, duration, failures by
 * reason), and the reconciler's state read when scraped (Caddy reachable, in sync, versions).
 */
export class RendererMetrics {
  private status: (() => RenderStatus) | undefined;
  private readonly loads: Counter;
  private readonly failures: Counter;
  private readonly duration: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.loads = new Counter({
      name: "cpm_renderer_caddy_loads_total",
      help: "Configurations loaded into Caddy (POST /load), successful or not.",
      registers,
    });
    this.failures = new Counter({
      name: "cpm_renderer_caddy_load_failures_total",
      help: "Loads into Caddy that failed, by reason: rejected (Caddy refused the config and keeps the last good one), unreachable, error.",
      labelNames: ["reason"],
      registers,
    });
    this.duration = new Histogram({
      name: "cpm_renderer_caddy_load_duration_seconds",
      help: "Duration of POST /load to Caddy.",
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const gauge = (name: string, help: string, read: (s: RenderStatus) => number) =>
      scrapedGauge(registry, name, help, () => {
        const s = this.status?.();
        return s && read(s);
      });
    gauge("cpm_renderer_caddy_reachable", "1 when Caddy's admin API answered the last request, else 0.", (s) =>
      Number(s.caddyReachable),
    );
    gauge("cpm_renderer_in_sync", "1 when Caddy runs the configuration's current version, else 0.", (s) =>
      Number(s.inSync),
    );
    gauge(
      "cpm_renderer_applied_version",
      "The configuration version Caddy runs (the last one loaded and confirmed).",
      (s) => s.appliedVersion,
    );
    gauge(
      "cpm_renderer_desired_version",
      "The configuration version config-service announced last (what Caddy should run).",
      (s) => s.desiredVersion,
    );
    for (const reason of ["rejected", "unreachable", "error"]) this.failures.inc({ reason }, 0);
  }

  /** Reads the reconciler's status when scraped. */
  observe(status: () => RenderStatus): void {
    this.status = status;
  }

  /** `caddy` with every `load` counted and timed. */
  instrument(caddy: CaddyAdminApi): CaddyAdminApi {
    return {
      load: async (json) => {
        const end = this.duration.startTimer();
        this.loads.inc();
        try {
          await caddy.load(json);
        } catch (err) {
          this.failures.inc({ reason: loadFailureReason(err) });
          throw err;
        } finally {
          end();
        }
      },
      currentConfigHash: () => caddy.currentConfigHash(),
      currentConfig: () => caddy.currentConfig(),
    };
  }
}

/** The process's (or `registry`'s) renderer metrics. */
export const rendererMetrics = metricSet((registry) => new RendererMetrics(registry));
