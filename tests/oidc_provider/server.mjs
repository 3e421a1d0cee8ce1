// A real OpenID provider for tests/test_sso.py: panva's oidc-provider (OpenID Certified), on loopback.
// Its development login form takes any login as the person's subject; the people it knows, and the one
// client (capacity), come from the environment:
//   PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI,
//   ACCOUNTS: JSON {"<subject>": {"email": "...", "email_verified": true}, ...}
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const accounts = JSON.parse(process.env.ACCOUNTS);

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  // Every subject can sign in at the provider; whether capacity lets them in is what the tests check.
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub, ...(accounts[sub] ?? {}) }) };
  },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["capacity-test-provider"] },
});
provider.proxy = false;

provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${provider.issuer}`);
});
