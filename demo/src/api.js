// GraphQL over HTTP for the page, and the demo customer's session.

/** A GraphQL error as the API reported it: `code` is its `extensions.code`. */
export class ApiError extends Error {
  constructor(code, message, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

export function createApi(endpoint) {
  // In memory only: a demo page has no business leaving tokens in localStorage.
  let accessToken = null;

  async function request(query, variables = {}) {
    const headers = { "content-type": "application/json" };
    if (accessToken) headers.authorization = `Bearer ${accessToken}`;
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables }),
      });
    } catch {
      throw new ApiError("NETWORK_ERROR", "The server cannot be reached.");
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`HTTP_${response.status}`, `The server answered ${response.status}.`);
    }
    if (Array.isArray(body.errors) && body.errors.length > 0) {
      const [first] = body.errors;
      const extensions = first.extensions ?? {};
      throw new ApiError(extensions.code ?? "UNKNOWN", first.message, extensions);
    }
    return body.data;
  }

  return {
    request,
    token: () => accessToken,
    setToken(token) {
      accessToken = token;
    },
  };
}

const SESSION_FIELDS = "accessToken accessTokenExpiresAt refreshToken user { id name email }";

/**
 * Signs in and keeps the access token fresh with the refresh token, a minute before it expires, so
 * a page left open keeps working. `onChange` hears about every new session.
 */
export async function signIn(api, email, password, onChange) {
  const login = async () =>
    (
      await api.request(
        `mutation ($input: LoginInput!) { login(input: $input) { ${SESSION_FIELDS} } }`,
        { input: { email, password } },
      )
    ).login;
  const refresh = async (refreshToken) =>
    (
      await api.request(
        `mutation ($token: String!) { refreshToken(refreshToken: $token) { ${SESSION_FIELDS} } }`,
        { token: refreshToken },
      )
    ).refreshToken;

  let session = await login();
  api.setToken(session.accessToken);
  onChange(session);

  const untilRefresh = () =>
    Math.max(5_000, Date.parse(session.accessTokenExpiresAt) - Date.now() - 60_000);
  const scheduleRefresh = (delay) => {
    setTimeout(async () => {
      try {
        // A refresh token works once; if this one was refused the session is gone: sign in anew.
        session = await refresh(session.refreshToken).catch(login);
        api.setToken(session.accessToken);
        onChange(session);
        scheduleRefresh(untilRefresh());
      } catch {
        onChange(null);
        scheduleRefresh(30_000);
      }
    }, delay);
  };
  scheduleRefresh(untilRefresh());
  return session;
}

/** A fresh idempotency key (crypto.randomUUID needs a secure context; this works on plain http too). */
export function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
