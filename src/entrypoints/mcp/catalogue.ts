// The aggregated lists /mcp serves (resources, templates, prompts) and which server owns each URI and name.
import { UriTemplate } from '@modelcontextprotocol/server';
import type {
  Prompt,
  Resource,
  ResourceTemplateType as ResourceTemplate,
} from '@modelcontextprotocol/server';
import type { McpCacheHint, McpListKind, McpUpstream } from '../../upstreams/mcp/mcp-upstream.js';
import type { ToolRegistry } from '../../upstreams/mcp/tool-registry.js';

/** Where a URI or name seen by clients lives upstream. */
export interface Owned {
  upstream: McpUpstream;
  /** The URI or name on that server. */
  name: string;
}

/**
 * Prefix of a resource URI two servers both list: `slipstream://<server>/<encodeURIComponent(uri)>`.
 *
 * Resource URIs stay as each server gives them (clients and models may read meaning into them, and
 * namespacing them would break links that tools return in `resource_link` content); a read is routed by a
 * per-URI owner map built from the lists, then by the servers' templates, then to the only server with
 * resources. Only a URI two servers both list is ambiguous: each copy is exposed under this prefix
 * (a valid URI, reversible, and naming its server), so no read can reach the wrong server.
 */
const CLASH_PREFIX = 'slipstream://';

/** Most entries in one aggregated list (each upstream already keeps at most 10,000 per list). */
const MAX_ITEMS = 100_000;

/**
 * Builds and keeps the aggregated resource, template and prompt lists, in config order then each server's
 * order (deterministic), with the owner maps that route reads, `prompts/get` and completions. Rebuilt on
 * any upstream's `list_changed`.
 */
export class McpCatalogue {
  resources: Resource[] = [];
  templates: ResourceTemplate[] = [];
  prompts: Prompt[] = [];
  private resourceOwners = new Map<string, Owned>();
  /** Upstream URIs two or more servers list (exposed under the clash prefix). */
  private clashes = new Set<string>();
  private promptOwners = new Map<string, Owned>();
  private templateOwners: Array<{ template: UriTemplate; raw: string; upstream: McpUpstream }> = [];

  private stale = true;

  constructor(private readonly registry: ToolRegistry) {}

  /** Some upstream list changed: the next {@link refresh} rebuilds. */
  invalidate(): void {
    this.stale = true;
  }

  /** Rebuilds the lists and owner maps if an upstream list changed since the last time. */
  refresh(): void {
    if (!this.stale) return;
    this.stale = false;
    this.rebuildResources();
    this.rebuildPrompts();
  }

  /** The server and URI a client's resource URI names, if any server can serve it. */
  resourceOwner(uri: string): Owned | undefined {
    if (uri.startsWith(CLASH_PREFIX)) {
      const rest = uri.slice(CLASH_PREFIX.length);
      const slash = rest.indexOf('/');
      const upstream = this.registry.upstreams().find((u) => u.name === rest.slice(0, slash));
      if (slash > 0 && upstream !== undefined)
        return { upstream, name: decodeURIComponent(rest.slice(slash + 1)) };
    }
    const listed = this.resourceOwners.get(uri);
    if (listed !== undefined) return listed;
    const templated = this.templateOwners.find((entry) => entry.template.match(uri) !== null);
    if (templated !== undefined) return { upstream: templated.upstream, name: uri };
    const offering = this.registry.upstreams().filter((u) => u.info()?.capabilities.resources !== undefined);
    return offering.length === 1 ? { upstream: offering[0]!, name: uri } : undefined;
  }

  /** The server owning a resource template (by its `uriTemplate`, for `ref/resource` completions). */
  templateOwner(uriTemplate: string): Owned | undefined {
    const entry = this.templateOwners.find((owner) => owner.raw === uriTemplate);
    return entry === undefined
      ? this.resourceOwner(uriTemplate)
      : { upstream: entry.upstream, name: uriTemplate };
  }

  promptOwner(name: string): Owned | undefined {
    return this.promptOwners.get(name);
  }

  /** The URI clients see for `uri` of `server` (the clash prefix only when two servers list it). */
  exposedUri(server: string, uri: string): string {
    return this.clashes.has(uri) ? `${CLASH_PREFIX}${server}/${encodeURIComponent(uri)}` : uri;
  }

  /**
   * The SEP-2549 hint for our aggregated `kind` list: the shortest TTL of its parts, `private` if any part
   * is (a server that sent no hint counts as `ttlMs: 0`, private: nothing says its list may be kept).
   */
  hint(kind: McpListKind, personal: boolean): McpCacheHint {
    let ttlMs = Number.MAX_SAFE_INTEGER;
    let shared = !personal;
    let any = false;
    for (const upstream of this.registry.upstreams()) {
      if (!offers(upstream, kind)) continue;
      any = true;
      const hint = upstream.listCacheHint(kind);
      ttlMs = Math.min(ttlMs, hint?.ttlMs ?? 0);
      if (hint?.cacheScope !== 'public') shared = false;
    }
    return any ? { ttlMs, cacheScope: shared ? 'public' : 'private' } : { ttlMs: 0, cacheScope: 'private' };
  }

  private rebuildResources(): void {
    const counts = new Map<string, number>();
    for (const upstream of this.registry.upstreams()) {
      for (const resource of upstream.resources())
        counts.set(resource.uri, (counts.get(resource.uri) ?? 0) + 1);
    }
    const resources: Resource[] = [];
    const owners = new Map<string, Owned>();
    const templates: ResourceTemplate[] = [];
    const templateOwners: McpCatalogue['templateOwners'] = [];
    for (const upstream of this.registry.upstreams()) {
      for (const resource of upstream.resources()) {
        if (resources.length >= MAX_ITEMS) break;
        const uri =
          counts.get(resource.uri) === 1
            ? resource.uri
            : `${CLASH_PREFIX}${upstream.name}/${encodeURIComponent(resource.uri)}`;
        owners.set(uri, { upstream, name: resource.uri });
        resources.push({ ...resource, uri });
      }
      for (const template of upstream.resourceTemplates()) {
        if (templates.length >= MAX_ITEMS) break;
        templates.push(template);
        try {
          templateOwners.push({
            template: new UriTemplate(template.uriTemplate),
            raw: template.uriTemplate,
            upstream,
          });
        } catch {
          // A template the SDK cannot parse still lists; reads of its URIs fall back to the other rules.
        }
      }
    }
    this.resources = resources;
    this.resourceOwners = owners;
    this.clashes = new Set([...counts].filter(([, count]) => count > 1).map(([uri]) => uri));
    this.templates = templates;
    this.templateOwners = templateOwners;
  }

  private rebuildPrompts(): void {
    const prompts: Prompt[] = [];
    const owners = new Map<string, Owned>();
    for (const upstream of this.registry.upstreams()) {
      for (const prompt of upstream.prompts()) {
        const name = this.registry.exposedName(upstream.name, prompt.name);
        // With namespacing off the first server in config order keeps a name two servers use.
        if (owners.has(name) || prompts.length >= MAX_ITEMS) continue;
        owners.set(name, { upstream, name: prompt.name });
        prompts.push({ ...prompt, name });
      }
    }
    this.prompts = prompts;
    this.promptOwners = owners;
  }
}

/** True when `upstream` declared the capability behind `kind`. */
export function offers(upstream: McpUpstream, kind: McpListKind): boolean {
  const capabilities = upstream.info()?.capabilities;
  if (kind === 'tools') return capabilities?.tools !== undefined;
  if (kind === 'prompts') return capabilities?.prompts !== undefined;
  return capabilities?.resources !== undefined;
}
