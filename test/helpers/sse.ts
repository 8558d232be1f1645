// Reads OpenAI-style SSE replies in tests: the slow, exact way, independent of the gateway's byte-scanning tap.

/** Concatenates the `delta.content` of every `data: {...}` chunk of an SSE body. */
export function contentOf(sse: string): string {
  return sse
    .split('\n\n')
    .filter((event) => event.startsWith('data: {'))
    .map((event) => {
      const chunk = JSON.parse(event.slice(6)) as { choices: Array<{ delta: { content?: string } }> };
      return chunk.choices[0]?.delta.content ?? '';
    })
    .join('');
}
