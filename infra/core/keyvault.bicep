// The vault (RBAC mode) holding the admin key, the license and the suppliers' credentials. The app
// reads them through Key Vault references with its identity (Key Vault Secrets User). This
// template writes the admin key, and core/webpubsub.bicep the Web PubSub connection string; the
// operator sets the others (docs/deploy.md).
param name string
param location string
param tags object
@secure()
param adminApiKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
  }
}

// Secret names follow the setting they feed: QCOS_ADMIN_API_KEY -> qcos-admin-api-key.
resource adminKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'qcos-admin-api-key'
  properties: {
    value: adminApiKey
    contentType: 'text/plain'
  }
}

output name string = vault.name
