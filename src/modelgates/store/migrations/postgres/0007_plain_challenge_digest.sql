-- A plain PKCE challenge is the verifier itself: keep only its S256 form
-- (BASE64URL(SHA256(challenge)), unpadded), as new codes do (pkce.stored_challenge).
UPDATE auth_codes
SET code_challenge = rtrim(
    translate(encode(sha256(convert_to(code_challenge, 'UTF8')), 'base64'), '+/', '-_'), '=')
WHERE code_challenge_method = 'plain' AND code_challenge IS NOT NULL;
