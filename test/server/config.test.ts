import { expect } from 'chai';
import { defaults, loadConfig, loadStartConfig, startFlagOptions, ConfigError } from '../../server/src/config.js';

describe('loadConfig', () => {
  it('gives the defaults of section 9', () => {
    const c = loadConfig({});
    expect(c).to.include({
      host: '127.0.0.1',
      port: 8080,
      db: 'sqlite:./data/hub.sqlite',
      taskTimeoutMs: 300000,
      maxTaskTimeoutMs: 3600000,
      queueTimeoutMs: 30000,
      queueLimit: 10000,
      maxAttempts: 2,
      maxMessageBytes: 33554432,
      heartbeatMs: 15000,
      resultTtlMs: 3600000,
      logLevel: 'info',
      shutdownGraceMs: 10000,
      rateLimit: 0,
    });
    expect(c.workerTokens).to.deep.equal([]);
    expect(c.publicUrl).to.equal(null);
  });

  it('reads the environment, flags win over it, and the result is frozen', () => {
    const c = loadConfig(
      { HUB_PORT: '9000', HUB_HOST: '0.0.0.0', HUB_WORKER_TOKENS: 'a, b,,c', HUB_PUBLIC_URL: 'https://hub.example.org/path' },
      { port: 9100 },
    );
    expect(c.port).to.equal(9100);
    expect(c.host).to.equal('0.0.0.0');
    expect(c.workerTokens).to.deep.equal(['a', 'b', 'c']);
    expect(c.publicUrl).to.equal('https://hub.example.org');
    expect(Object.isFrozen(c)).to.equal(true);
    expect(Reflect.set(c, 'port', 1)).to.equal(false);
    expect(c.port).to.equal(9100);
  });

  const bad: Array<[Record<string, string>, string]> = [
    [{ HUB_PORT: 'eighty' }, 'HUB_PORT'],
    [{ HUB_PORT: '70000' }, 'HUB_PORT'],
    [{ HUB_QUEUE_LIMIT: '-1' }, 'HUB_QUEUE_LIMIT'],
    [{ HUB_MAX_ATTEMPTS: '0' }, 'HUB_MAX_ATTEMPTS'],
    [{ HUB_HEARTBEAT_MS: '1.5' }, 'HUB_HEARTBEAT_MS'],
    [{ HUB_DB: 'postgres://x' }, 'HUB_DB'],
    [{ HUB_LOG_LEVEL: 'loud' }, 'HUB_LOG_LEVEL'],
    [{ HUB_ALLOWED_ORIGINS: 'not a url' }, 'HUB_ALLOWED_ORIGINS'],
    [{ HUB_PUBLIC_URL: 'ftp://x' }, 'HUB_PUBLIC_URL'],
    [{ HUB_TASK_TIMEOUT_MS: '5000', HUB_MAX_TASK_TIMEOUT_MS: '1000' }, 'HUB_TASK_TIMEOUT_MS'],
  ];
  for (const [env, name] of bad) {
    it(`refuses ${JSON.stringify(env)} naming ${name}`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, name);
    });
  }

  it('reads HUB_MAX_BUFFERED_BYTES, else bounds unsent bytes at 4 x HUB_MAX_MESSAGE_BYTES', () => {
    expect(loadConfig({ HUB_MAX_MESSAGE_BYTES: '1048576' }).maxBufferedBytes).to.equal(4_194_304);
    expect(loadConfig({ HUB_MAX_MESSAGE_BYTES: '1048576', HUB_MAX_BUFFERED_BYTES: '2048' }).maxBufferedBytes).to.equal(2048);
    expect(loadConfig({ HUB_MAX_BUFFERED_BYTES: '' }).maxBufferedBytes).to.equal(4 * 33_554_432);
    expect(loadConfig({ HUB_MAX_BUFFERED_BYTES: '2048' }, { maxMessageBytes: 4096 }).maxBufferedBytes).to.equal(2048);
    expect(loadConfig({}, { maxMessageBytes: 4096 }).maxBufferedBytes).to.equal(16_384);
    expect(() => loadConfig({ HUB_MAX_BUFFERED_BYTES: '100' })).to.throw(ConfigError, 'HUB_MAX_BUFFERED_BYTES');
  });

  it('declares the options that queues, commits and service descriptions read, with their defaults', () => {
    expect(loadConfig({})).to.include({ commit: 'stored', maxQueueTimeoutMs: 3_600_000, queueMaxBytes: 268_435_456, maxServiceBytes: 262_144 });
    expect(loadConfig({ HUB_COMMIT: 'async', HUB_MAX_QUEUE_TIMEOUT_MS: '60000', HUB_QUEUE_MAX_BYTES: '1048576', HUB_MAX_SERVICE_BYTES: '4096' })).to.include({
      commit: 'async',
      maxQueueTimeoutMs: 60_000,
      queueMaxBytes: 1_048_576,
      maxServiceBytes: 4096,
    });
    expect(() => loadConfig({ HUB_COMMIT: 'later' })).to.throw(ConfigError, 'HUB_COMMIT: expected one of stored, async, got "later"');
    expect(() => loadConfig({ HUB_QUEUE_MAX_BYTES: '0' })).to.throw(ConfigError, 'HUB_QUEUE_MAX_BYTES');
    expect(() => loadConfig({ HUB_MAX_SERVICE_BYTES: 'big' })).to.throw(ConfigError, 'HUB_MAX_SERVICE_BYTES');
  });

  it('names options set in code by their key, and checks their types', () => {
    expect(() => loadConfig({}, { dialMinDelayMs: 100, dialMaxDelayMs: 50 })).to.throw(ConfigError, 'dialMinDelayMs: must not exceed dialMaxDelayMs');
    expect(() => loadConfig({}, { storeFailingMs: 0 })).to.throw(ConfigError, 'storeFailingMs: expected an integer from 1');
    expect(() => loadConfig({}, { apiKeys: ['a', ''] })).to.throw(ConfigError, 'HUB_API_KEYS');
    expect(() => loadConfig({}, { logLevel: 'loud' as never })).to.throw(ConfigError, 'HUB_LOG_LEVEL');
  });

  describe('utils-hub start', () => {
    const saved = { ...process.env };
    afterEach(() => {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    });

    it('takes the flags of the options that have one', () => {
      expect(startFlagOptions()).to.deep.equal({
        host: { type: 'string' },
        port: { type: 'string' },
        db: { type: 'string' },
        broker: { type: 'string' },
        cluster: { type: 'string' },
      });
    });

    it("reads the process's environment, the flags winning, a bad flag named as such", () => {
      process.env.HUB_PORT = '9000';
      process.env.HUB_MAX_ATTEMPTS = '5';
      expect(loadStartConfig({})).to.include({ port: 9000, maxAttempts: 5 });
      expect(loadStartConfig({ port: '9100', host: '0.0.0.0' })).to.include({ port: 9100, host: '0.0.0.0', maxAttempts: 5 });
      expect(() => loadStartConfig({ port: 'eighty' })).to.throw(ConfigError, '--port: expected an integer, got "eighty"');
      expect(() => loadStartConfig({ port: '70000' })).to.throw(ConfigError, 'HUB_PORT: expected an integer from 0 to 65535, got 70000');
    });
  });

  it('refuses an unknown option given in code', () => {
    expect(() => loadConfig({}, { nope: 1 } as never)).to.throw(ConfigError, 'nope');
  });

  it('keeps the defaults object itself frozen', () => {
    expect(Object.isFrozen(defaults)).to.equal(true);
  });
});
