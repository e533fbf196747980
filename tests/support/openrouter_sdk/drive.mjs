// Drives the official @openrouter/sdk against a running ModelGates server, so every
// answer passes through the SDK's own zod validators. Usage:
//   node drive.mjs <node_modules dir> '<json: {api, key, limitedKey, model, endpoint}>'
// Prints one JSON object: for each step, {ok: true, value} or {ok: false, error,
// status}. A validation failure is a step that is not ok, with the SDK's message.
import { pathToFileURL } from "node:url";
import path from "node:path";

const [modules, raw] = process.argv.slice(2);
const config = JSON.parse(raw);
const entry = path.join(modules, "@openrouter", "sdk", "esm", "index.js");
const { OpenRouter } = await import(pathToFileURL(entry).href);

const client = (apiKey) =>
  new OpenRouter({ apiKey, serverURL: config.api, retryConfig: { strategy: "none" } });
const sdk = client(config.key);
const limited = client(config.limitedKey);
const messages = [{ role: "user", content: "one two three four" }];
const results = {};

async function step(name, work) {
  try {
    results[name] = { ok: true, value: await work() };
  } catch (error) {
    results[name] = {
      ok: false,
      error: String(error?.message ?? error).slice(0, 4000),
      status: error?.statusCode ?? error?.status ?? null,
    };
  }
}

async function allPages(pages) {
  const items = [];
  let total = null;
  for await (const page of pages) {
    items.push(...page.result.data);
    total = page.result.totalCount;
  }
  return { items, total };
}

const summary = (model) => ({
  id: model.id,
  canonicalSlug: model.canonicalSlug,
  name: model.name,
  created: model.created,
  contextLength: model.contextLength,
  modality: model.architecture.modality,
  inputModalities: model.architecture.inputModalities,
  tokenizer: model.architecture.tokenizer ?? null,
  prompt: model.pricing.prompt,
  completion: model.pricing.completion,
  isModerated: model.topProvider.isModerated,
  supportedParameters: model.supportedParameters,
  details: model.links.details,
});

await step("models.list", async () => {
  const { items, total } = await allPages(await sdk.models.list());
  return { total, models: items.map(summary) };
});
await step("models.list.paged", async () => {
  const { items } = await allPages(await sdk.models.list({ limit: 2 }));
  return items.map((model) => model.id);
});
await step("models.listForUser", async () => {
  const pages = await limited.models.listForUser({ bearer: config.limitedKey });
  const { items, total } = await allPages(pages);
  return { total, ids: items.map((model) => model.id) };
});
await step("models.count", async () => (await sdk.models.count()).data.count);
await step("embeddings.listModels", async () => {
  const { items } = await allPages(await sdk.embeddings.listModels());
  return items.map((model) => model.id);
});
await step("endpoints.list", async () => {
  const [author, slug] = config.endpoint.split("/");
  const data = (await sdk.endpoints.list({ author, slug })).data;
  const endpoint = data.endpoints[0];
  return {
    id: data.id,
    count: data.endpoints.length,
    providerName: endpoint.providerName,
    tag: endpoint.tag,
    contextLength: endpoint.contextLength,
    prompt: endpoint.pricing.prompt,
    toolChoice: endpoint.supportsToolChoice,
  };
});
await step("providers.list", async () =>
  (await sdk.providers.list()).data.map((provider) => provider.slug),
);
await step("chat.send", async () => {
  const answer = await sdk.chat.send({
    chatRequest: { model: config.model, messages, maxTokens: 3 },
  });
  return {
    id: answer.id,
    model: answer.model,
    content: answer.choices[0].message.content,
    promptTokens: answer.usage.promptTokens,
    completionTokens: answer.usage.completionTokens,
    cost: answer.usage.cost ?? null,
  };
});
await step("chat.send.stream", async () => {
  const stream = await sdk.chat.send({
    chatRequest: { model: config.model, messages, maxTokens: 2, stream: true },
  });
  const ids = new Set();
  let usage = null;
  let text = "";
  for await (const chunk of stream) {
    ids.add(chunk.id);
    text += chunk.choices[0]?.delta?.content ?? "";
    if (chunk.usage) usage = { cost: chunk.usage.cost ?? null, tokens: chunk.usage.completionTokens };
  }
  return { ids: [...ids], text, usage };
});
if (results["chat.send"]?.ok) {
  await step("generations.getGeneration", async () => {
    const data = (await sdk.generations.getGeneration({ id: results["chat.send"].value.id })).data;
    return {
      id: data.id,
      totalCost: data.totalCost,
      tokensPrompt: data.tokensPrompt,
      tokensCompletion: data.tokensCompletion,
      providerName: data.providerName,
      streamed: data.streamed,
    };
  });
}
await step("chat.send.notAllowed", async () =>
  limited.chat.send({ chatRequest: { model: config.otherModel, messages, maxTokens: 2 } }),
);
await step("chat.send.fallbackNotAllowed", async () =>
  limited.chat.send({
    chatRequest: { model: config.model, models: [config.model, config.otherModel], messages, maxTokens: 2 },
  }),
);

process.stdout.write(JSON.stringify(results) + "\n");
