-- A plain PKCE challenge is the verifier itself: keep only its S256 form
-- (BASE64URL(SHA256(challenge)), unpadded), as new codes do (pkce.stored_challenge).
-- modelgates_pkce_s256 is modelgates.pkce.s256, registered by the migration runner.
UPDATE auth_codes
SET code_challenge = modelgates_pkce_s256(code_challenge)
WHERE code_challenge_method = 'plain' AND code_challenge IS NOT NULL;
