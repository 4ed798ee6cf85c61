/** Label and field selectors as the API server parses them (the subset operators and kubectl use). */

type Req = { key: string; op: '=' | '!=' | 'in' | 'notin' | 'exists' | '!exists'; values: string[] };

function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim() !== '') out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

export function parseLabelSelector(s: string | null | undefined): Req[] {
  if (!s) return [];
  return splitTop(s).map((part): Req => {
    let m = /^(\S+)\s+(in|notin)\s+\((.*)\)$/.exec(part);
    if (m) return { key: m[1]!, op: m[2] as 'in', values: m[3]!.split(',').map((v) => v.trim()) };
    m = /^([^!=]+)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (m) return { key: m[1]!.trim(), op: m[2] === '!=' ? '!=' : '=', values: [m[3]!.trim()] };
    if (part.startsWith('!')) return { key: part.slice(1), op: '!exists', values: [] };
    return { key: part, op: 'exists', values: [] };
  });
}

export function matchesLabels(labels: Record<string, string> | undefined, reqs: Req[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const v = l[r.key];
    switch (r.op) {
      case '=':
        return v === r.values[0];
      case '!=':
        return v !== r.values[0];
      case 'in':
        return v !== undefined && r.values.includes(v);
      case 'notin':
        return v === undefined || !r.values.includes(v);
      case 'exists':
        return v !== undefined;
      case '!exists':
        return v === undefined;
    }
  });
}

/** `metadata.name=x,metadata.namespace!=y` (the fields every resource supports). */
export function matchesFields(obj: { metadata?: { name?: string; namespace?: string } }, s: string | null | undefined): boolean {
  if (!s) return true;
  return splitTop(s).every((part) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(part);
    if (!m) return true;
    const field = m[1]!.trim();
    const actual = field === 'metadata.name' ? obj.metadata?.name : field === 'metadata.namespace' ? obj.metadata?.namespace : undefined;
    return m[2] === '!=' ? actual !== m[3] : actual === m[3];
  });
}

/** A matchLabels/matchExpressions selector object against labels. */
export function matchesSelector(
  labels: Record<string, string> | undefined,
  sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined,
): boolean {
  if (sel === undefined) return false;
  const reqs: Req[] = Object.entries(sel.matchLabels ?? {}).map(([key, v]) => ({ key, op: '=', values: [v] }));
  for (const e of sel.matchExpressions ?? [])
    reqs.push({
      key: e.key,
      op: ({ In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!exists' } as const)[e.operator as 'In'] ?? 'exists',
      values: e.values ?? [],
    });
  return matchesLabels(labels, reqs);
}
